"""--quick runs of the speed benchmarks (precision, probe cache, serving ladder, time to accuracy) on tiny models.

No timing is asserted; each script must run, print its CPU line and table, and write its JSON.
"""

from __future__ import annotations

import json

import pytest

from hftl.run import cpu
from tests.helpers.bench_scripts import run_script, table_rows


def _cpu_line(stdout: str) -> None:
    assert stdout.startswith(f"CPU: {cpu.cpu_model()}"), stdout[:300]
    assert "% of peak" in stdout or "no bf16 instructions" in stdout or "test acc" in stdout


@pytest.mark.slow
def test_precision_quick(tiny_configs, tmp_path):  # noqa: F811
    stdout = run_script("precision", [*tiny_configs, "--modalities", "text"], tmp_path)
    _cpu_line(stdout)
    if not cpu.native_bf16():
        assert "no bf16 instructions" in stdout
        return
    rows = table_rows(stdout.split("\n\n")[2], "| modality | run | fp32 samples/s")
    assert [(r[0], r[1].split(",")[0]) for r in rows] == [("text", "lora"), ("text", "full")]
    data = json.loads((tmp_path / "precision.json").read_text())
    for r in data["results"]:
        assert r["train"]["train_flops_per_sample"] > 0 and set(r["memory_mb"]) == {"no", "bf16"}


@pytest.mark.slow
def test_probe_cache_quick(tiny_configs, tmp_path):  # noqa: F811
    stdout = run_script("probe_cache", [*tiny_configs, "--modalities", "text,vision"], tmp_path)
    _cpu_line(stdout)
    rows = table_rows(stdout.split("\n\n")[2], "| modality | step-by-step s")
    assert [r[0] for r in rows] == ["text", "vision"]
    for row in rows:  # same test accuracy from the cached probe (vision: its flip augmentation is turned off)
        step, cached = row[-1].split(" / ")
        assert step == cached


@pytest.mark.slow
def test_ladder_quick(tiny_configs, tmp_path):  # noqa: F811
    pytest.importorskip("openvino", reason="the ladder's OpenVINO rows need hftl[openvino]")
    stdout = run_script("ladder", tiny_configs, tmp_path)
    _cpu_line(stdout)
    rows = table_rows(stdout.split("\n\n")[2], "| backend | test acc")
    names = [r[0] for r in rows]
    assert {"PyTorch fp32", "ORT fp32", "ORT int8", "OpenVINO fp32", "OpenVINO int8"} <= set(names)
    assert ("PyTorch bf16" in names) == cpu.native_bf16()
    data = json.loads((tmp_path / "ladder.json").read_text())
    assert data["openvino_int8_kernels"] and data["ort_int8_kernels"].startswith(cpu.int8_isa())


@pytest.mark.slow
def test_time_to_accuracy_quick(tiny_configs, tmp_path):  # noqa: F811
    stdout = run_script("time_to_accuracy", [*tiny_configs, "--modalities", "text"], tmp_path)
    _cpu_line(stdout)
    rows = table_rows(stdout.split("\n\n")[2], "| modality | seed")
    assert [r[0] for r in rows] == ["text"]
