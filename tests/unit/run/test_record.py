"""The typed run record: results.json written and read through hftl.run.record, old files (no version) still read."""

from __future__ import annotations

import json

import pytest

from hftl.errors import RunDirError
from hftl.report import summarize
from hftl.run.record import SCHEMA_VERSION, RunRecord, read_record

# A results.json as hftl wrote it before the record had a schema version (shortened: one history entry).
OLD_RESULTS = {
    "run": {"name": "demo", "modality": "text", "method": "lora", "model": "zoo:minilm-l6", "dataset": "zoo:bbc-news",
            "seed": 42, "world_size": 1, "device": "cpu", "mixed_precision": "no", "started": "2026-01-01T00:00:00",
            "wall_s": 12.5, "versions": {"hftl": "0.1.0"}},
    "params": {"trainable": 10, "total": 100},
    "data": {"labels": ["a", "b"], "train": 8, "validation": 2, "test": 4, "skipped_samples": 0},
    "train": {"runtime_s": 3.0, "samples_per_second": 5.0, "steps": 6, "total_steps": 6, "epochs_completed": 3,
              "best_step": 6, "stopped_early": False, "metric_for_best": "accuracy"},
    "eval": {"accuracy": 1.0, "loss": 0.1},
    "test": {"accuracy": 0.75, "loss": 0.5},
    "history": [{"step": 6, "epoch": 2, "eval/accuracy": 1.0}],
    "shift": {"mean_accuracy": 0.5},
}  # fmt: skip


def test_an_old_results_file_reads_and_writes_back_the_same_sections(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(OLD_RESULTS))
    record = read_record(tmp_path)
    assert record.run.method == "lora" and record.data.sizes == {"train": 8, "validation": 2, "test": 4}
    assert record.train.stop_reason == "" and record.measurement("shift") == {"mean_accuracy": 0.5}
    assert record.measurement("forgetting") == {}
    again = record.to_dict()
    assert again.pop("schema_version") == SCHEMA_VERSION
    assert {k: again[k] for k in OLD_RESULTS if k not in ("train", "run")} == {
        k: v for k, v in OLD_RESULTS.items() if k not in ("train", "run")
    }
    assert again["run"] == {**OLD_RESULTS["run"], "gradient_checkpointing": None}  # not recorded before schema 1
    assert again["train"] == {**OLD_RESULTS["train"], "stop_reason": ""}
    assert "run lora on zoo:minilm-l6" not in summarize(tmp_path) and "lora on zoo:minilm-l6" in summarize(tmp_path)


def test_a_newer_or_broken_record_is_refused_naming_the_file(tmp_path):
    with pytest.raises(RunDirError, match="schema_version 99 is newer"):
        RunRecord.from_dict({**OLD_RESULTS, "schema_version": 99}, origin="x/results.json")
    (tmp_path / "results.json").write_text(json.dumps({"run": {}}))
    with pytest.raises(RunDirError, match="results.json: not a run record"):
        read_record(tmp_path)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(RunDirError, match="not valid JSON"):
        read_record(tmp_path)


def test_a_run_writes_a_versioned_record(quick_overrides):
    from hftl.config import load_config
    from hftl.recipe import run

    results = run(load_config(None, [*quick_overrides, "method.name=linear_probe", "training.epochs=1"]))
    out = next(o for o in quick_overrides if o.startswith("output.dir=")).split("=", 1)[1]
    assert results["schema_version"] == SCHEMA_VERSION
    assert read_record(out).to_dict() == json.loads(json.dumps(results))
