"""A finished speech recognition run and its small (audio, text) data, as the export and serving tests need them."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import yaml

from tests.helpers.speech_clips import write_clips

# The run's greedy cap (asr.max_new_tokens): far below what the random tiny model says uncapped (it talks until its
# TARGET_POSITIONS table ends), so a path that ignored it would write longer transcripts.
RUN_MAX_NEW_TOKENS = 5


def fake_speech_run(run_dir: Path, model_dir: Path, data_dir: Path) -> Path:
    """A finished speech recognition run as the training side leaves it: model/, config.yaml, results.json."""
    shutil.copytree(model_dir, run_dir / "model")
    config = {
        "modality": "audio",
        "model": {"source": str(model_dir)},
        "data": {"source": str(data_dir), "input_column": "audio", "label_column": "text"},
        "asr": {"max_new_tokens": RUN_MAX_NEW_TOKENS},
        "output": {"dir": str(run_dir)},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    record = {"run": {"name": run_dir.name, "task": "speech_recognition", "modality": "audio", "method": "lora",
                      "model": str(model_dir), "dataset": str(data_dir), "seed": 0},
              "params": {"trainable": 1, "total": 2}, "data": {"labels": []},
              "train": {"runtime_s": 1.0, "samples_per_second": 1.0, "steps": 1, "total_steps": 1},
              "test": {"wer": 0.5}}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(record))
    return run_dir


def write_speech_data(folder: Path, n_test: int = 4) -> Path:
    """train.csv / test.csv of (audio, text) rows; the tiny model hears chirps, so any text will do."""
    paths = write_clips(folder / "wav", n_test + 2)
    for split, rows in (("train", paths[:2]), ("test", paths[2:])):
        with (folder / f"{split}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["audio", "text"])
            writer.writerows(
                [(p.relative_to(folder).as_posix(), f"clip number {i}") for i, p in enumerate(rows)]
            )
    return folder
