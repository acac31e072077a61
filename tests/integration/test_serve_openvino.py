"""`hftl serve` on OpenVINO: a run with an OpenVINO export is served by it (the speed issue's default runtime), answers
like `hftl predict` on the same export, and a runtime whose export is missing is refused with the command to write it.

OpenVINO runs only in child processes (the server, `hftl export`, `hftl predict`): its CPU plugin's threads must not
live in the pytest process (see tests/helpers/openvino_child.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytest.importorskip("openvino", reason="the OpenVINO backend is the optional extra hftl[openvino] (make test installs it)")

from hftl.serve.process import ServerProcess  # noqa: E402
from tests.helpers import serve_fixtures as fx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["the team will win the game", "money and market news", "a great new film with a good actor"]


def hftl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "hftl.cli", *map(str, args)], capture_output=True, text=True, env=env, check=False)


def predicted(export_dir: Path, out: Path, *flags: str) -> list[tuple[str, float]]:
    texts = out.with_suffix(".txt")
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    proc = hftl("predict", export_dir, *flags, str(texts), "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return [(row["label"], row["score"]) for row in rows]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = fx.text_run(tmp_path_factory.mktemp("serve_ov"))  # trained, exported to onnx/
    proc = hftl("export", run, "--backend", "openvino", "export.max_samples=32", "export.latency_repeats=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("flags", [(), ("--precision", "fp32"), ("--quantized",)], ids=["measured", "fp32", "int8"])
def test_a_run_is_served_by_its_openvino_export_like_predict(run_dir, flags, tmp_path):
    server = ServerProcess(run_dir, *flags, log=tmp_path / "server.log")  # --backend auto
    try:
        server.wait_ready(timeout_s=300)
        response = httpx.post(server.url + "/predict", json={"inputs": TEXTS, "top_k": 1}, timeout=60)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    body = response.json()
    # no flag: the variant the export timed fastest on this CPU within 0.5 point of fp32, said with its reason
    default = json.loads((run_dir / "openvino" / "export_report.json").read_text())["default"]
    variant = {(): default["variant"], ("--precision", "fp32"): "fp32", ("--quantized",): "int8"}[flags]
    assert body["backend"] == f"openvino-{variant}"
    if not flags:
        assert f"hftl serve: openvino {variant}: {default['reason']}" in server.log_tail(20_000)
    expected = predicted(run_dir / "openvino", tmp_path / "predicted.jsonl", *flags)
    served = [(p[0]["label"], p[0]["score"]) for p in body["predictions"]]
    assert [label for label, _ in served] == [label for label, _ in expected]
    assert [score for _, score in served] == pytest.approx([score for _, score in expected], abs=1e-5)


@pytest.mark.slow
def test_the_runtime_can_be_named_and_a_missing_export_is_refused(run_dir, tmp_path):
    server = ServerProcess(run_dir, "--backend", "onnxruntime", "--precision", "fp32", log=tmp_path / "server.log")
    try:
        server.wait_ready(timeout_s=300)
        body = httpx.post(server.url + "/predict", json={"inputs": TEXTS[:1]}, timeout=60).json()
    finally:
        server.stop()
    assert body["backend"] == "onnxruntime-fp32"
    proc = hftl("serve", run_dir / "onnx", "--backend", "openvino")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no openvino export" in proc.stderr and "hftl export RUN_DIR --backend openvino" in proc.stderr
