"""OpenVINO backend (the hftl[openvino] extra): IR fp32 parity gate, NNCF int8 accuracy gate, kernels, predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openvino", reason="the OpenVINO backend is the optional extra hftl[openvino] (make test installs it)")
pytest.importorskip("nncf", reason="NNCF int8 is part of hftl[openvino]")

from hftl.deploy.openvino import FP32_XML, INT8_XML, REPORT_FILE  # noqa: E402
from tests.helpers.paths import REPO


def in_child(*args: str) -> dict:
    """tests/helpers/openvino_child.py in its own process (OpenVINO's threads must not live in the pytest process)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "helpers" / "openvino_child.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exported(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov") / "openvino"
    return out, in_child(tiny_bert, out)


def test_export_writes_ir_int8_and_a_report_with_the_kernels_that_ran(exported):
    out, child = exported
    report = child["report"]
    assert (out / FP32_XML).is_file() and (out / INT8_XML).is_file() and (out / "config.json").is_file()
    assert json.loads((out / REPORT_FILE).read_text()) == report
    assert report["parity"]["fp32_max_abs_diff"] <= report["parity"]["atol"]
    assert report["accuracy"]["torch"] - report["accuracy"]["openvino_int8"] <= report["accuracy"]["max_int8_drop"]
    # The runtime graph's primitives: int8 kernels say I8/i8 and name an instruction set of this CPU.
    kernels = report["int8_kernels"]
    assert kernels and any("8" in name for name in kernels), kernels
    assert report["cpu"]["model"] and report["versions"]["openvino"]
    # every variant timed beside PyTorch, and the serving default decided on those numbers (fp32 unless one is faster
    # within 0.5 point); bf16 only where the CPU has bf16 instructions
    variants = {"openvino_fp32", "openvino_int8"} | ({"openvino_bf16"} if report["cpu"]["native_bf16"] else set())
    assert set(report["latency_ms"]["batch_32"]) == {"torch", *variants} == set(report["accuracy"]) - {"max_int8_drop"}
    assert report["default"]["variant"] in {"fp32", "int8", "bf16"}
    assert set(report["default"]["speedup_vs_fp32"]) == {v.split("_")[1] for v in variants} - {"fp32"}


def test_classifier_matches_torch_predictions(exported):
    _, child = exported
    assert child["max_diff_vs_torch"] < 1e-4
    assert set(child["int8_labels"]) <= {"label_0", "label_1", "label_2"}


def test_parity_failure_refuses_and_keeps_the_previous_export(tiny_bert, tmp_path):
    target = tmp_path / "openvino"
    target.mkdir()
    (target / "keep.txt").write_text("previous")
    child = in_child(tiny_bert, target, "--parity-atol", "-1")
    assert "fp32 IR max abs logit diff" in child["error"]
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".openvino.tmp")]


def hftl_cli(*args: str) -> str:
    """The hftl command in its own process (OpenVINO stays out of the pytest process)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hftl.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def predictions(stdout: str) -> list[tuple[str, float]]:
    """(label, score) per input from `hftl predict`'s table (a header, then label, score, runner-up, input)."""
    lines = [line.split() for line in stdout.splitlines() if line.strip()]
    start = next(i for i, cols in enumerate(lines) if cols[:2] == ["label", "score"]) + 1
    return [(cols[0], float(cols[1])) for cols in lines[start:]]


@pytest.mark.slow
def test_export_run_and_predict_with_every_backend(quick_overrides, tmp_path):
    from hftl.config import load_config
    from hftl.deploy.export import serving_dir
    from hftl.recipe import run
    from hftl.run import cpu

    run(load_config(None, [*quick_overrides, "training.epochs=1", "training.tracking=none"]))
    run_dir = Path(quick_overrides[-1].split("=", 1)[1])
    assert "OpenVINO export" in hftl_cli("export", run_dir, "--backend", "openvino", "export.latency_repeats=2")
    report = json.loads((run_dir / "openvino" / REPORT_FILE).read_text())
    assert report["backend"] == "openvino" and (run_dir / "openvino" / FP32_XML).is_file()
    texts = ["the team win the game", "money market news"]
    ov = predictions(hftl_cli("predict", run_dir / "openvino", "--precision", "fp32", *texts))
    ov_int8 = predictions(hftl_cli("predict", run_dir / "openvino", "--quantized", *texts))
    assert serving_dir(run_dir) == run_dir / "openvino"  # a run folder is served by its fastest export
    assert predictions(hftl_cli("predict", run_dir, "--precision", "fp32", *texts)) == ov
    # without flags, the variant the export timed fastest here within 0.5 point of fp32
    default = report["default"]["variant"]
    assert set(report["latency_ms"]["batch_1"]) >= {"torch", "openvino_fp32", "openvino_int8"}
    assert ("openvino_bf16" in report["latency_ms"]["batch_32"]) == cpu.native_bf16()
    explicit = {"fp32": ["--precision", "fp32"], "int8": ["--quantized"], "bf16": ["--precision", "bf16"]}[default]
    assert predictions(hftl_cli("predict", run_dir, *texts)) == predictions(hftl_cli("predict", run_dir, *explicit, *texts))
    pt = _torch_predict(run_dir, texts)
    assert [label for label, _ in ov] == [label for label, _ in pt] and len(ov_int8) == 2
    assert max(abs(a[1] - b[1]) for a, b in zip(ov, pt, strict=True)) < 1e-3  # the CLI prints 4 decimals
    if cpu.native_bf16():
        import shutil

        shutil.rmtree(run_dir / "openvino")  # no export left: the run's PyTorch model serves, here in bf16
        assert serving_dir(run_dir) == run_dir
        bf16 = predictions(hftl_cli("predict", run_dir, "--precision", "bf16", *texts))
        assert len(bf16) == 2 and all(0.0 < score <= 1.0 for _, score in bf16)


def _torch_predict(run_dir: Path, texts: list[str]) -> list[tuple[str, float]]:
    from hftl.config import load_config
    from hftl.deploy.torch_backend import TorchClassifier
    from hftl.modalities import get_modality

    cfg = load_config(run_dir / "config.yaml")
    modality = get_modality(cfg.modality)
    processor = modality.load_processor(str(run_dir / "model"), cfg)
    return TorchClassifier(run_dir / "model").classify(modality.encode(processor, cfg, texts))
