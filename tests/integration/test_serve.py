"""`hftl serve` end to end: real servers on loopback ports, one per modality, talked to over HTTP.

Every endpoint, every modality, the 4xx of each kind of bad request (and the server serving on after it), dynamic
batching, backpressure (503 + Retry-After), worker loss, the page in headless Chromium, and answers equal to
`hftl predict` on the same inputs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from hftl.deploy.export import predict
from hftl.serve.process import ServerProcess
from tests.helpers import serve_fixtures as fx

TEXTS = ["the team will win the game", "money and market news", "a great new film with a good actor"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve_runs")
    return {"text": fx.text_run(root), "vision": fx.vision_run(root), "audio": fx.audio_run(root)}


@pytest.fixture(scope="module")
def servers(runs, tmp_path_factory):
    """All servers start at once (each loads its model in its own process), then the tests share them."""
    logs = tmp_path_factory.mktemp("serve_logs")
    specs = {
        "text": (runs["text"], "--quantized", "--max-batch", "8", "--max-wait-ms", "50", "--max-queue", "16",
                 "--max-inputs", "4", "--max-text-chars", "200", "--max-body-bytes", "20000"),
        # Batches wait long for company and the queue holds one batch: two requests together overflow it.
        "overload": (runs["text"], "--precision", "fp32", "--max-batch", "4", "--max-queue", "4", "--max-wait-ms", "1500"),
        # Four requests fill a batch; fewer wait long enough to share one even on a busy machine.
        "vision": (runs["vision"] / "onnx", "--max-image-pixels", "4096", "--top-k", "2", "--max-batch", "4",
                   "--max-wait-ms", "800"),
        "audio": (runs["audio"], "--max-audio-seconds", "2"),
        "workers": (runs["text"], "--quantized", "--workers", "2"),
    }  # fmt: skip
    started = {name: ServerProcess(target, *args, log=logs / f"{name}.log") for name, (target, *args) in specs.items()}
    try:
        for server in started.values():  # generous: five servers import torch at once on a shared 2-core machine
            server.wait_ready(timeout_s=420)
        yield started
    finally:
        for server in started.values():
            server.stop()


def post_json(url: str, body, **kw) -> httpx.Response:
    return httpx.post(url + "/predict", json=body, timeout=60, **kw)


def assert_still_serves(url: str, body: dict) -> None:
    response = post_json(url, body)
    assert response.status_code == 200, response.text
    assert httpx.get(url + "/health").status_code == 200


def same_as_predict(served: list[list[dict]], expected: list[tuple[str, float]], atol: float = 1e-5) -> None:
    assert [p[0]["label"] for p in served] == [label for label, _ in expected]
    assert [p[0]["score"] for p in served] == pytest.approx([score for _, score in expected], abs=atol)


# --- text --------------------------------------------------------------------------------------------------------


def test_text_predict_equals_hftl_predict(servers, runs):
    url = servers["text"].url
    response = post_json(url, {"inputs": TEXTS, "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["backend"] == "onnxruntime-int8" and body["model"] == "text_run"
    assert all(len(p) == 2 and p[0]["score"] >= p[1]["score"] for p in body["predictions"])
    same_as_predict(body["predictions"], predict(runs["text"] / "onnx", TEXTS, quantized=True))


def test_text_multipart_and_default_top_k(servers, runs):
    url = servers["text"].url
    fields = [("inputs", (None, t)) for t in TEXTS[:2]]  # parts without a filename: text fields
    response = httpx.post(url + "/predict", files=[*fields, ("extra", ("u.txt", b"x"))], timeout=60)
    assert response.status_code == 422 and "unknown form field(s) ['extra']" in response.json()["error"]
    response = httpx.post(url + "/predict", files=[*fields, ("top_k", (None, "1"))], timeout=60)
    assert response.status_code == 200, response.text
    same_as_predict(response.json()["predictions"], predict(runs["text"] / "onnx", TEXTS[:2], quantized=True))
    [labels] = post_json(url, {"inputs": TEXTS[:1]}).json()["predictions"]
    assert len(labels) == 3  # --top-k default 3, capped at the 3 labels


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b'{"inputs": ["unclosed"', {"content-type": "application/json"}, 400, "malformed JSON"),
        (b"inputs=hello", {"content-type": "application/x-www-form-urlencoded"}, 415, "not accepted"),
        (b"hello", {"content-type": "text/plain"}, 415, "application/json"),
        (json.dumps({"inputs": ["  "]}).encode(), None, 422, "inputs[0]: empty text"),
        (json.dumps({"inputs": []}).encode(), None, 422, "inputs"),
        (json.dumps({"texts": ["a"]}).encode(), None, 422, "unknown field 'texts'"),
        (json.dumps({"inputs": ["a"], "top_k": 0}).encode(), None, 422, "top_k"),
        (json.dumps({"inputs": [3]}).encode(), None, 422, "inputs[0]"),
        (json.dumps(["a"]).encode(), None, 422, "body"),
        (json.dumps({"inputs": ["x" * 201]}).encode(), None, 413, "the limit is 200"),
        (json.dumps({"inputs": ["a"] * 5}).encode(), None, 413, "the limit is 4"),
        (json.dumps({"inputs": ["a" * 100] * 300}).encode(), None, 413, "the limit is 20000 bytes"),
    ],
)
def test_text_bad_requests_get_a_4xx_with_a_message(servers, body, headers, status, message):
    url = servers["text"].url
    response = httpx.post(url + "/predict", content=body, headers=headers or {"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert_still_serves(url, {"inputs": TEXTS[:1]})


def test_unknown_path_and_method(servers):
    url = servers["text"].url
    assert httpx.get(url + "/nope").status_code == 404
    assert httpx.get(url + "/predict").status_code == 405
    assert "error" in httpx.get(url + "/nope").json()


def test_health_ready_and_schema(servers):
    url = servers["text"].url
    assert httpx.get(url + "/health").json()["status"] == "ok"
    ready = httpx.get(url + "/ready").json()
    assert ready["ready"] is True and ready["modality"] == "text" and ready["labels"] == ["business", "film", "sport"]
    schema = httpx.get(url + "/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert body["application/json"]["schema"]["additionalProperties"] is False


def test_concurrent_requests_are_batched_and_answered_individually(servers, runs):
    url = servers["text"].url
    texts = [f"{w} game and {v} market" for w in ("win", "lose", "play", "sport") for v in ("big", "new")]
    before = fx.metric_values(httpx.get(url + "/metrics").text)
    with ThreadPoolExecutor(len(texts)) as pool:
        responses = list(pool.map(lambda t: post_json(url, {"inputs": [t], "top_k": 1}), texts))
    assert [r.status_code for r in responses] == [200] * len(texts)
    # Dynamic int8 quantization scales activations by the range of the whole batch, so an input's int8 scores
    # move (~1e-5) with its batch neighbours; labels do not.
    served = [r.json()["predictions"][0] for r in responses]
    same_as_predict(served, predict(runs["text"] / "onnx", texts, quantized=True), atol=1e-3)
    after = fx.metric_values(httpx.get(url + "/metrics").text)
    inputs = after["hftl_serve_batch_size_sum"] - before.get("hftl_serve_batch_size_sum", 0.0)
    batches = after["hftl_serve_batch_size_count"] - before.get("hftl_serve_batch_size_count", 0.0)
    assert inputs == len(texts) and batches < len(texts), f"{len(texts)} concurrent requests ran as {batches} batches"


def test_metrics_count_requests_errors_latency_and_batches(servers):
    url = servers["text"].url
    post_json(url, {"inputs": TEXTS[:1]})
    httpx.post(url + "/predict", content=b"{", headers={"content-type": "application/json"})
    text = httpx.get(url + "/metrics").text
    assert httpx.get(url + "/metrics").headers["content-type"].startswith("text/plain")
    for name in ("hftl_serve_requests_total", "hftl_serve_errors_total", "hftl_serve_request_latency_seconds_bucket",
                 "hftl_serve_batch_size_bucket", "hftl_serve_queue_inputs"):  # fmt: skip
        assert name in text, name
    assert 'hftl_serve_requests_total{code="400",path="/predict"}' in text
    assert 'hftl_serve_errors_total{reason="malformed"}' in text


def test_full_queue_answers_503_with_retry_after_then_serves(servers):
    url = servers["overload"].url
    results = {}

    def send(name, inputs):
        results[name] = post_json(url, {"inputs": inputs})

    first = threading.Thread(target=send, args=("first", TEXTS))  # 3 inputs wait up to 1.5 s for a 4th
    first.start()
    time.sleep(0.3)
    send("second", TEXTS[:2])  # 3 + 2 > --max-queue 4
    first.join()
    assert results["first"].status_code == 200, results["first"].text
    second = results["second"]
    assert second.status_code == 503, second.text
    assert second.headers["retry-after"] == "1" and "queue is full" in second.json()["error"]
    never_fits = post_json(url, {"inputs": TEXTS + TEXTS[:2]})  # 5 inputs can never queue behind --max-queue 4
    assert never_fits.status_code == 413 and "queues at most 4" in never_fits.json()["error"]
    assert_still_serves(url, {"inputs": TEXTS[:1]})


def test_a_killed_worker_is_replaced_and_later_requests_succeed(servers):
    url = servers["workers"].url
    children = subprocess.run(["pgrep", "-P", str(servers["workers"].proc.pid)], capture_output=True, text=True)
    pids = {int(p) for p in children.stdout.split()}
    worker = httpx.get(url + "/health").json()["pid"]
    assert worker in pids and len(pids) >= 2
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 120
    ok = 0
    while time.monotonic() < deadline and ok < 5:  # the other worker answers; uvicorn starts a new one
        try:
            ok += post_json(url, {"inputs": TEXTS[:1]}).status_code == 200
        except httpx.HTTPError:
            time.sleep(0.2)
    assert ok == 5
    while time.monotonic() < deadline:
        now = {int(p) for p in subprocess.run(["pgrep", "-P", str(servers["workers"].proc.pid)], capture_output=True,
                                               text=True).stdout.split()}  # fmt: skip
        if len(now) == len(pids) and worker not in now:
            break
        time.sleep(0.5)
    assert len(now) == len(pids) and worker not in now, "uvicorn did not replace the killed worker"


def test_fp32_text_batches_run_at_their_longest_text_and_equal_hftl_predict(servers, runs):
    # The overload server serves the fp32 graph: batches are cut to their longest text (8 of the export's 16 tokens
    # here), which must not move a score.
    response = post_json(servers["overload"].url, {"inputs": TEXTS, "top_k": 1})
    assert response.status_code == 200, response.text
    same_as_predict(response.json()["predictions"], predict(runs["text"] / "onnx", TEXTS, precision="fp32"), atol=1e-6)


@pytest.mark.slow  # one more server process: about 30 s on 2 cores
def test_backend_torch_serves_the_runs_pytorch_model_like_hftl_predict(runs, tmp_path):
    server = ServerProcess(runs["text"], "--backend", "torch", log=tmp_path / "server.log")
    try:
        server.wait_ready(timeout_s=300)
        response = post_json(server.url, {"inputs": TEXTS, "top_k": 1})
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["backend"] == "torch-fp32" and body["model"] == "text_run"
    assert "hftl serve: torch fp32: the run's PyTorch model" in server.log_tail(20_000)
    same_as_predict(body["predictions"], predict(runs["text"], TEXTS, backend="torch"), atol=1e-5)


def batch_metrics(url: str) -> tuple[float, float]:
    values = fx.metric_values(httpx.get(url + "/metrics").text)
    return values.get("hftl_serve_batch_size_sum", 0.0), values.get("hftl_serve_batch_size_count", 0.0)


# --- images and audio ---------------------------------------------------------------------------------------------


def test_vision_base64_and_multipart_equal_hftl_predict(servers, runs, tmp_path):
    url = servers["vision"].url
    images = [fx.png_bytes(seed) for seed in range(3)]
    for i, data in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(data)
    expected = predict(runs["vision"] / "onnx", [str(tmp_path / f"{i}.png") for i in range(3)])
    encoded = [base64.b64encode(b).decode() for b in images]
    as_json = post_json(url, {"inputs": [encoded[0], "data:image/png;base64," + encoded[1], encoded[2]]})
    assert as_json.status_code == 200, as_json.text
    same_as_predict(as_json.json()["predictions"], expected)
    assert all(len(p) == 2 for p in as_json.json()["predictions"])  # --top-k 2
    files = [("inputs", (f"{i}.png", b, "image/png")) for i, b in enumerate(images)]
    as_form = httpx.post(url + "/predict", files=files, timeout=60)
    assert as_form.status_code == 200, as_form.text
    same_as_predict(as_form.json()["predictions"], expected)


def test_vision_bad_inputs(servers):
    url = servers["vision"].url
    corrupt = b"\x89PNG\r\n\x1a\n not really a png"
    cases = [
        ({"inputs": [base64.b64encode(corrupt).decode()]}, 422, "inputs[0]: not a readable image"),
        ({"inputs": ["%%% not base64"]}, 422, "not valid base64"),
        ({"inputs": [base64.b64encode(fx.png_bytes(size=65)).decode()]}, 413, "the limit is 4096 pixels"),
    ]
    good = {"inputs": [base64.b64encode(fx.png_bytes()).decode()]}
    for body, status, message in cases:
        response = post_json(url, body)
        assert response.status_code == status and message in response.json()["error"], response.text
        assert_still_serves(url, good)
    text_part = httpx.post(url + "/predict", files=[("inputs", (None, "a text"))], timeout=60)
    assert text_part.status_code == 422 and "expected a file" in text_part.json()["error"]
    truncated = fx.png_bytes()[:60]  # a valid header, then the data stops
    response = httpx.post(url + "/predict", files=[("inputs", ("t.png", truncated, "image/png"))], timeout=60)
    assert response.status_code == 422 and "not a readable image" in response.json()["error"], response.text
    assert_still_serves(url, good)


def test_an_undecodable_image_fails_only_its_request_in_a_shared_batch(servers, runs, tmp_path):
    """A batch's images are decoded in one preprocessing call: a truncated PNG (its header passes the checks) among
    good ones gets its own 422, and the good ones, run together, still equal `hftl predict`."""
    url = servers["vision"].url
    images = [fx.png_bytes(seed) for seed in (11, 12, 13)]
    for i, data in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(data)
    expected = predict(runs["vision"] / "onnx", [str(tmp_path / f"{i}.png") for i in range(3)])
    bodies = [images[0], fx.png_bytes()[:60], images[1], images[2]]
    barrier = threading.Barrier(len(bodies))

    def send(data: bytes) -> httpx.Response:
        barrier.wait()
        return post_json(url, {"inputs": [base64.b64encode(data).decode()], "top_k": 1})

    inputs_before, batches_before = batch_metrics(url)
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(send, bodies))
    inputs_after, batches_after = batch_metrics(url)
    assert (inputs_after - inputs_before, batches_after - batches_before) == (4, 1), "the four requests did not share a batch"
    assert [r.status_code for r in responses] == [200, 422, 200, 200], [r.text for r in responses]
    assert "input 0" in responses[1].json()["error"] and "not a readable image" in responses[1].json()["error"]
    same_as_predict([r.json()["predictions"][0] for r in responses if r.status_code == 200], expected)


def test_audio_predict_equals_hftl_predict_and_bad_inputs(servers, runs, tmp_path):
    url = servers["audio"].url
    clips = {label: fx.wav_bytes(label) for label in ("low", "high")}
    for label, data in clips.items():
        (tmp_path / f"{label}.wav").write_bytes(data)
    expected = predict(runs["audio"] / "onnx", [str(tmp_path / f"{label}.wav") for label in clips])
    files = [("inputs", (f"{label}.wav", data, "audio/wav")) for label, data in clips.items()]
    response = httpx.post(url + "/predict", files=files, data={"top_k": "1"}, timeout=60)
    assert response.status_code == 200, response.text
    same_as_predict(response.json()["predictions"], expected)
    as_json = post_json(url, {"inputs": [base64.b64encode(d).decode() for d in clips.values()]})
    same_as_predict(as_json.json()["predictions"], expected)

    too_long = fx.wav_bytes("low", seconds=3.0)
    for data, status, message in [(b"RIFF....WAVEfmt garbage", 422, "not a readable audio file"),
                                  (too_long, 413, "the limit is 2 s")]:  # fmt: skip
        response = httpx.post(url + "/predict", files=[("inputs", ("x.wav", data, "audio/wav"))], timeout=60)
        assert response.status_code == status and message in response.json()["error"], response.text
        assert_still_serves(url, {"inputs": [base64.b64encode(clips["low"]).decode()]})


# --- the page -----------------------------------------------------------------------------------------------------


def chromium_dom(url: str) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make system-deps installs it)")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-dev-shm-usage", "--virtual-time-budget=10000", "--dump-dom", url]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def test_page_shows_the_card_and_classifies_a_text_in_chromium(servers, runs):
    url = servers["text"].url
    page = httpx.get(url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    dom = chromium_dom(url + "/?text=the%20team%20will%20win%20the%20game")
    assert "Model card" in dom and "## Usage" in dom and "hftl serve" in dom  # the card `hftl push --what onnx` writes
    [expected] = predict(runs["text"] / "onnx", ["the team will win the game"], quantized=True)
    assert 'class="prediction"' in dom, dom[-2000:]
    assert f"<td>{expected[0]}</td><td>{expected[1]:.4f}</td>" in dom


def test_image_page_offers_a_file_form(servers):
    dom = chromium_dom(servers["vision"].url + "/")
    assert 'type="file"' in dom and 'accept="image/*"' in dom and "vision" in dom


# --- Ray Serve ----------------------------------------------------------------------------------------------------


@pytest.mark.slow  # starts a local Ray and Ray Serve: about a minute on 2 cores
def test_ray_serve_replicas_answer_like_predict_and_survive_a_replica_kill(runs, tmp_path):
    pytest.importorskip("ray.serve")
    server = ServerProcess(runs["text"], "--ray", "--workers", "2", "--threads", "1", "--precision", "fp32",
                           log=tmp_path / "ray.log")  # fmt: skip
    try:
        server.wait_ready(timeout_s=300)
        url = server.url
        response = post_json(url, {"inputs": TEXTS})
        assert response.status_code == 200, response.text
        same_as_predict(response.json()["predictions"], predict(runs["text"] / "onnx", TEXTS, precision="fp32"))
        bad = post_json(url, {"inputs": ["a"], "typo": 1})
        assert bad.status_code == 422 and "unknown field 'typo'" in bad.json()["error"]

        replicas = {httpx.get(url + "/health").json()["pid"] for _ in range(30)}
        assert len(replicas) == 2, f"Ray Serve spread 30 requests over {replicas}"
        for _ in range(10):
            assert post_json(url, {"inputs": TEXTS[:1]}).status_code == 200
        # /metrics sums both replicas, whichever answers: 1 + 10 answered predictions, 1 rejected, 30 health checks
        for _ in range(4):
            metrics = httpx.get(url + "/metrics").text
            assert 'hftl_serve_requests_total{code="200",path="/predict"} 11.0' in metrics, metrics
            assert 'hftl_serve_requests_total{code="200",path="/health"} 30.0' in metrics
        victim = replicas.pop()
        os.kill(victim, signal.SIGKILL)
        outcomes = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # in-flight requests may fail; later ones must succeed
            try:
                outcomes.append(post_json(url, {"inputs": TEXTS[:1]}).status_code)
            except httpx.HTTPError as err:
                outcomes.append(type(err).__name__)
            if outcomes[-5:] == [200] * 5:
                break
        assert outcomes[-5:] == [200] * 5, outcomes
        while time.monotonic() < deadline:  # Serve starts a new replica in place of the dead one
            pids = {httpx.get(url + "/health").json()["pid"] for _ in range(20)}
            if len(pids) == 2 and victim not in pids:
                break
            time.sleep(1)
        assert len(pids) == 2 and victim not in pids, pids
    finally:
        server.stop()


@pytest.mark.slow  # three servers and a worker kill: about a minute
def test_load_benchmark_runs_end_to_end(runs, tmp_path):
    args = ["--target", str(runs["text"]), "--clients", "1,4", "--requests", "30", "--seconds", "8", "--max-batch", "4",
            "--max-queue", "8"]  # fmt: skip
    proc, result = fx.run_serve_load(args, tmp_path, "serve_load.json")
    assert [(r["mode"], r["clients"]) for r in result["levels"]] == [
        ("batching", 1), ("no batching", 1), ("batching", 4), ("no batching", 4)]  # fmt: skip
    assert all(r["five_xx"] == 0 and r["ok"] > 0 and r["peak_rss_mb"] > 0 and r["load_1min"] >= 0 for r in result["levels"])
    assert result["backend"]["per_input_speedup"] > 0 and result["backend"]["load_1min"] >= 0  # timed between levels
    assert set(result["overload"]["codes"]) <= {"200", "503"}  # past saturation: answers or 503s, nothing else
    [loss] = result["worker_loss"]
    assert loss["killed_pid"] and loss["ok_after_kill"] > 0
    assert "| clients | mode |" in proc.stdout and "| load |" in proc.stdout and "Worker loss" in proc.stdout
