"""Each benchmark script's --quick mode on tiny models and data: it runs, prints its table and writes its JSON.

No timing is asserted: the numbers of a smoke run on tiny random models mean nothing.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.helpers.bench_scripts import run_script, table_rows
from tests.helpers.paths import REPO


@pytest.mark.slow
def test_train_throughput_quick(tiny_configs, tmp_path):
    rows = table_rows(run_script("train_throughput", tiny_configs, tmp_path), "| modality | run | hftl | Trainer")
    assert [r[0] for r in rows] == ["text", "vision", "audio"]
    data = json.loads((tmp_path / "train_throughput.json").read_text())
    assert data["benchmark"] == "train_throughput" and data["quick"] is True
    assert data["machine"]["torch_threads"] == 1
    for r in data["results"]:
        assert set(r["samples_per_second"]) == {"hftl", "Trainer"} and r["ratio"] > 0
        # the same weights, batches and dropout masks: the same losses, step by step
        assert len(r["losses"]["hftl"]) == len(r["losses"]["Trainer"]) == r["steps"]
        assert r["loss_max_abs_diff"] < 1e-5
        assert r["validation_accuracy"]["hftl"] == r["validation_accuracy"]["Trainer"]


@pytest.mark.slow
def test_inference_quick(tiny_configs, tmp_path):
    rows = table_rows(run_script("inference", tiny_configs, tmp_path), "| modality | backend | test acc")
    backends = {(r[0], r[1]) for r in rows}
    for modality in ("text", "vision", "audio"):
        assert {(modality, b) for b in ("torch", "ort fp32", "int8 per-tensor", "int8 hftl", "int8 hftl, no spinning")} <= backends
    assert ("text", "ort fp32 fused") in backends and ("audio", "ort fp32 fused") not in backends
    data = json.loads((tmp_path / "inference.json").read_text())
    for r in data["results"]:
        by_name = {row["backend"]: row for row in r["rows"]}
        assert by_name["ort fp32"]["max_abs_logit_diff"] < 1e-4
        assert set(by_name["int8 hftl"]["latency_ms"]) == {"batch_1", "batch_32"}
        assert by_name["torch"]["speedup_vs_torch"]["batch_1"] == 1.0


@pytest.mark.slow
def test_memory_quick(tiny_configs, tmp_path):
    # one modality: a process per method, each paying the imports (the other scripts cover all three)
    args = [*tiny_configs, "--modalities", "vision"]
    rows = table_rows(run_script("memory", args, tmp_path), "| modality | method | trainable params")
    assert [(r[0], r[1]) for r in rows] == [("vision", k) for k in ("lora", "full", "linear_probe")]
    data = json.loads((tmp_path / "memory.json").read_text())
    for r in data["results"]:
        assert r["peak_rss_mb"] >= r["rss_after_build_mb"] > r["rss_after_imports_mb"] > 0
    trainable = {r["method"]: r["params"]["trainable"] for r in data["results"]}
    assert trainable["linear_probe"] < trainable["lora"] < trainable["full"]


@pytest.mark.slow
def test_input_pipeline_quick(tiny_configs, tmp_path):
    rows = table_rows(run_script("input_pipeline", tiny_configs, tmp_path), "| modality | batch | data only")
    assert [r[0] for r in rows] == ["text", "vision", "audio"]
    data = json.loads((tmp_path / "input_pipeline.json").read_text())
    for r in data["results"]:
        assert r["data_only"] > 0 and r["step_only"] > 0 and set(r["loop"]) == {"0", "1"}


@pytest.mark.slow
def test_scaling_quick(tiny_configs, tmp_path):
    rows = table_rows(run_script("scaling", tiny_configs, tmp_path), "| modality | varied | fixed")
    assert {r[0] for r in rows} == {"text", "vision", "audio"}
    data = json.loads((tmp_path / "scaling.json").read_text())
    keys = {r["modality"]: r["input_size_key"] for r in data["results"]}
    assert keys == {"text": "text.max_length", "vision": "vision.image_size", "audio": "audio.clip_seconds"}
    assert all(row["samples_per_second"] > 0 for r in data["results"] for row in r["rows"])


def test_rerunning_one_benchmark_replaces_only_its_section():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from report import merge_sections
    finally:
        sys.path.remove(str(REPO / "bench"))
    old = "# Benchmarks\n\nProduced by make bench.\n\n## Memory\n\n| a |\n\n## Scaling\n\n| b |\n"
    new = merge_sections(old, {"Memory": "## Memory\n\n| c |\n", "Input": "## Input\n\n| d |\n"})
    assert new == "# Benchmarks\n\nProduced by make bench.\n\n## Memory\n\n| c |\n\n## Scaling\n\n| b |\n\n## Input\n\n| d |\n"
