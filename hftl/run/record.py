"""The run record: RUN/results.json as typed dataclasses, written here and read back only through here.

    schema_version  SCHEMA_VERSION (absent in files written before it existed: read as version 0, same layout)
    run             RunInfo: what ran where (name, modality, task, method, model, data set, seed, devices, versions,
                    time); task is "classification" in files written before it was recorded
    params          trainable / total parameter counts
    data            DataInfo: label names, rows per split, rows skipped as bad samples
    train           TrainInfo: steps, time, throughput, best step, early stop (lp_ft: each phase under ``phases``)
    eval, test      metrics of the selected (best) model on validation and test
    history         one record per evaluation: step, epoch, eval/<metric> (lp_ft: with its phase)
    measurements    the optional sections (transferability, shift, forgetting, ...): top-level keys in the file

A new section is a new field (or a new measurement key); a reader of an older file gets the field's default.
The file is written last in a run, atomically: its presence means "finished".
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hftl.errors import RunDirError
from hftl.files import write_json_atomic
from hftl.run.rundir import RESULTS

SCHEMA_VERSION = 1


@dataclass
class RunInfo:
    name: str
    modality: str
    method: str
    model: str
    dataset: str
    seed: int
    task: str = "classification"  # what the model outputs (hftl.tasks): classification, speech_recognition
    world_size: int = 1
    device: str = "cpu"
    mixed_precision: str = "no"
    gradient_checkpointing: bool | None = None  # whether the model really recomputed activations; None: not recorded
    # the candidate backbone: name (minilm-l6@L3@random), source, init, layers_kept, keep_layers; None: not recorded
    backbone: dict[str, Any] | None = None
    started: str = ""
    wall_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class DataInfo:
    labels: list[Any]
    sizes: dict[str, int] = field(default_factory=dict)  # rows per split: train, validation, test
    skipped_samples: int = 0

    def to_dict(self) -> dict[str, Any]:  # the file keeps the splits flat beside labels
        return {"labels": self.labels, **self.sizes, "skipped_samples": self.skipped_samples}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DataInfo:
        sizes = {k: v for k, v in raw.items() if k not in ("labels", "skipped_samples")}
        return cls(labels=list(raw["labels"]), sizes=sizes, skipped_samples=raw.get("skipped_samples", 0))


@dataclass
class TrainInfo:
    runtime_s: float
    samples_per_second: float
    steps: int
    total_steps: int
    epochs_completed: int = 0
    best_step: int | None = None
    stopped_early: bool = False
    stop_reason: str = ""
    metric_for_best: str | None = None
    phases: dict[str, dict[str, Any]] | None = None  # lp_ft: "probe" and "fine_tune", each a TrainInfo's dict

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.phases is None:
            del out["phases"]
        return out


@dataclass
class RunRecord:
    run: RunInfo
    params: dict[str, int]
    data: DataInfo
    train: TrainInfo
    eval: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    # the test split's per-class precision/recall/F1/support and confusion matrix ({} when not scored)
    per_class: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run": dataclasses.asdict(self.run),
            "params": dict(self.params),
            "data": self.data.to_dict(),
            "train": self.train.to_dict(),
            "eval": dict(self.eval),
            "test": dict(self.test),
            "history": list(self.history),
            **({"per_class": self.per_class} if self.per_class else {}),
            **self.measurements,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], origin: str = "results.json") -> RunRecord:
        version = raw.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise RunDirError(f"{origin}: schema_version {version!r} is newer than this hftl reads ({SCHEMA_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(
                run=_build(RunInfo, raw["run"]),
                params=dict(raw["params"]),
                data=DataInfo.from_dict(raw["data"]),
                train=_build(TrainInfo, raw["train"]),
                eval=dict(raw.get("eval") or {}),
                test=dict(raw.get("test") or {}),
                history=list(raw.get("history") or []),
                per_class=dict(raw.get("per_class") or {}),
                measurements={k: v for k, v in raw.items() if k not in known},
                schema_version=SCHEMA_VERSION,
            )
        except (KeyError, TypeError) as err:
            raise RunDirError(f"{origin}: not a run record ({type(err).__name__}: {err})") from err

    def measurement(self, name: str) -> dict[str, Any]:
        """An optional section (transferability, shift, forgetting); {} when the run did not measure it."""
        return self.measurements.get(name) or {}


def _build(schema: type, raw: dict[str, Any]) -> Any:
    """A dataclass from a mapping, ignoring keys a newer hftl added (forward compatible within a version)."""
    names = {f.name for f in dataclasses.fields(schema)}
    return schema(**{k: v for k, v in raw.items() if k in names})


def results_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RESULTS


def write_record(run_dir: str | Path, record: RunRecord) -> dict[str, Any]:
    """Write RUN/results.json atomically; returns what was written (as plain data)."""
    data = record.to_dict()
    write_json_atomic(results_path(run_dir), data)
    return data


def read_record(run_dir: str | Path) -> RunRecord:
    """RUN/results.json of a finished run (any schema version up to SCHEMA_VERSION)."""
    path = results_path(run_dir)
    if not path.is_file():
        raise RunDirError(f"{path} does not exist: {run_dir} is not a finished run")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunDirError(f"{path}: not valid JSON ({err})") from err
    return RunRecord.from_dict(raw, origin=str(path))
