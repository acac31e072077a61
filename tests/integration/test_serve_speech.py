"""`hftl serve` on a speech recognition export: a real server on a loopback port transcribes audio sent as
multipart files or base64 JSON, equal to `hftl predict` on the same files; bad audio gets a 4xx naming the problem;
concurrent requests run as shared batches; /metrics, /ready and the page know it is a recogniser."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from hftl.cli import main
from hftl.serve.process import ServerProcess
from hftl.serve.settings import Limits, ServeSettings, resolve_export_dir
from hftl.serve.speech import ServedRecognizer
from tests.helpers.serve_fixtures import metric_values, run_serve_load
from tests.helpers.speech_clips import RATE, chirp, tiny_recogniser, write_clips
from tests.helpers.speech_runs import fake_speech_run, write_speech_data


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory, real_home) -> Path:
    root = tmp_path_factory.mktemp("serve_speech")
    model = tiny_recogniser(root / "tiny_asr", clip_seconds=2)
    run_dir = fake_speech_run(root / "run", model, write_speech_data(root / "data"))
    code = main(["export", str(run_dir), "export.max_int8_wer_increase=100", "export.latency_repeats=1",
                 "export.num_threads=1"])  # fmt: skip
    assert code == 0
    return run_dir


@pytest.fixture(scope="module")
def server(speech_run, tmp_path_factory):
    # Batches wait long enough for concurrent requests to meet; the window (2 s) is tighter than --max-audio-seconds.
    started = ServerProcess(speech_run, "--max-batch", "8", "--max-wait-ms", "300", "--max-audio-seconds", "5",
                            log=tmp_path_factory.mktemp("serve_speech_log") / "server.log")  # fmt: skip
    try:
        started.wait_ready(timeout_s=300)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    paths = write_clips(folder, 4)
    at_8k = folder / "at_8k.wav"  # resampled to 16 kHz by both the server and `hftl predict`
    sf.write(at_8k, chirp(1.5, seed=7, rate=8_000), 8_000)
    return [*paths, at_8k]


def predicted(export: Path, paths: list[Path], out: Path, *flags: str) -> list[str]:
    assert main(["predict", str(export), *flags, *map(str, paths), "--output", str(out)]) == 0
    return [json.loads(line)["transcript"] for line in out.read_text().splitlines()]


def files(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("inputs", (p.name, p.read_bytes(), "audio/wav")) for p in paths]


def texts(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [t["text"] for t in response.json()["transcripts"]]


def test_transcripts_equal_hftl_predict_multipart_and_base64(server, speech_run, clips, tmp_path):
    expected = predicted(speech_run / "onnx", clips, tmp_path / "predict.jsonl")
    assert all(expected) and len(set(expected)) > 1  # a random model, but it says something different per clip
    response = httpx.post(server.url + "/predict", files=files(clips), timeout=120)
    assert texts(response) == expected
    assert response.json()["backend"] == "onnxruntime-fp32" and response.json()["model"] == "run"
    as_json = {"inputs": [base64.b64encode(p.read_bytes()).decode() for p in clips]}
    assert texts(httpx.post(server.url + "/predict", json=as_json, timeout=120)) == expected


def test_bad_audio_gets_a_4xx_naming_the_problem_and_the_server_serves_on(server, clips):
    long_clip = io.BytesIO()
    sf.write(long_clip, chirp(3.0, seed=1), RATE, format="WAV")
    cases = [
        ([("inputs", ("x.wav", b"RIFF....WAVEfmt garbage", "audio/wav"))], 422, "inputs[0]: not a readable audio file"),
        ([("inputs", ("long.wav", long_clip.getvalue(), "audio/wav"))], 413, "inputs[0]: audio of 3.0 s; the model hears at most 2 s"),
        ([*files([clips[0]]), ("inputs", ("bad.wav", b"\x00" * 64, "audio/wav"))], 422, "inputs[1]:"),
    ]  # fmt: skip
    for parts, status, message in cases:
        response = httpx.post(server.url + "/predict", files=parts, timeout=60)
        assert response.status_code == status and message in response.json()["error"], response.text
    text_part = httpx.post(server.url + "/predict", files=[("inputs", (None, b"hello"))], timeout=60)  # a field, no file
    assert text_part.status_code == 422 and "expected a file" in text_part.json()["error"]
    bad_b64 = httpx.post(server.url + "/predict", json={"inputs": ["%%%"]}, timeout=60)
    assert bad_b64.status_code == 422 and "not valid base64" in bad_b64.json()["error"]
    wrong_type = httpx.post(server.url + "/predict", content=b"x", headers={"content-type": "text/plain"}, timeout=60)
    assert wrong_type.status_code == 415
    assert texts(httpx.post(server.url + "/predict", files=files(clips[:1]), timeout=120))


def test_concurrent_requests_share_batches_and_each_gets_its_own_transcript(server, speech_run, clips, tmp_path):
    expected = predicted(speech_run / "onnx", clips, tmp_path / "predict.jsonl")
    before = metric_values(httpx.get(server.url + "/metrics").text)
    with ThreadPoolExecutor(len(clips)) as pool:
        responses = list(pool.map(lambda p: httpx.post(server.url + "/predict", files=files([p]), timeout=120), clips))
    assert [texts(r)[0] for r in responses] == expected
    after = metric_values(httpx.get(server.url + "/metrics").text)
    inputs = after["hftl_serve_batch_size_sum"] - before.get("hftl_serve_batch_size_sum", 0.0)
    batches = after["hftl_serve_batch_size_count"] - before.get("hftl_serve_batch_size_count", 0.0)
    assert inputs == len(clips) and batches < len(clips), f"{len(clips)} concurrent requests ran as {batches} batches"
    assert 'hftl_serve_requests_total{code="200",path="/predict"}' in httpx.get(server.url + "/metrics").text


def test_ready_and_page_say_speech_recognition(server):
    ready = httpx.get(server.url + "/ready").json()
    assert ready["ready"] and ready["task"] == "speech recognition" and ready["labels"] == []
    page = httpx.get(server.url + "/").text
    assert "speech recognition" in page and "Transcribe" in page and 'accept="audio/*"' in page
    assert 'id="top_k"' not in page  # a recogniser has no labels to rank


def test_quantized_serves_the_int8_copy_as_predict_does(speech_run, clips, tmp_path):
    export_dir, backend = resolve_export_dir(speech_run)
    served = ServedRecognizer(ServeSettings(str(export_dir), backend=backend, quantized=True, num_threads=1))
    assert served.backend_name == "onnxruntime-int8" and served.window_s == 2
    outputs = served.run(served.encode(served.check([p.read_bytes() for p in clips], Limits())))
    assert outputs == predicted(export_dir, clips, tmp_path / "int8.jsonl", "--quantized")


@pytest.mark.slow  # two servers and a few greedy decodes: about a minute on 2 cores
def test_load_benchmark_speech_mode_runs_end_to_end(speech_run, clips, tmp_path):
    args = ["--speech", str(speech_run), "--clips", str(clips[0].parent), "--clients", "1,2", "--requests", "4",
            "--seconds", "60"]  # fmt: skip
    proc, result = run_serve_load(args, tmp_path, "serve_load_speech.json")
    assert [(r["mode"], r["clients"]) for r in result["levels"]] == [
        ("batching", 1), ("no batching", 1), ("batching", 2), ("no batching", 2)]  # fmt: skip
    assert all(r["errors"] == 0 and r["ok"] == 4 for r in result["levels"])
    assert result["backend"]["batch"] == 2 and result["backend"]["per_input_speedup"] > 0
    assert "| 2 | batching | 4 |" in proc.stdout and "per clip" in proc.stdout
