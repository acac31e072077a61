"""Expand a compare spec into ordinary run configs: one per data set x backbone x method x training size x seed.

Each run is the data set's base recipe with, in this order, the spec's overrides, the data set's overrides, the
method's learning rate and overrides, what a selection chose (compare/selection.py), then the grid's own keys
(model.source, method.name, the training size, training.seed and data.subset_seed -- each seed draws its own
training subset --, name, output.dir, output.overwrite, study.per_row, evaluation.* of ``measure``). A size is
data.shots_per_class (rows per class); a speech recognition data set has no classes, so there it is
data.max_train_samples (training rows). Names are deterministic:
``DATASET__BACKBONE__METHOD__shots-N__seed-S`` (speech recognition: ``rows-N``, N training rows), so a rerun of the
same spec finds its earlier runs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from hftl.compare.spec import CompareSpec, DatasetSpec
from hftl.config import Config, EvaluationConfig, load_config
from hftl.errors import ConfigError
from hftl.tasks.speech_recognition import SpeechRecognition

logger = logging.getLogger("hftl")


@dataclass
class GridRun:
    name: str
    dataset: str
    modality: str
    backbone: str  # the model source as the spec names it
    method: str
    shots: int | str  # rows per class, or "all"
    seed: int
    config: Config

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output.dir)

    @property
    def transcribes(self) -> bool:
        """A speech recognition run (its size is training rows, not rows per class)."""
        return self.config.task == SpeechRecognition.name


def backbone_label(source: str) -> str:
    """Short name of a model source for run names: zoo:NAME -> NAME, a Hub id or folder -> its last part."""
    label = source.removeprefix("zoo:").rstrip("/").split("/")[-1]
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in label) or "model"


def cell_name(dataset: str, backbone: str, method: str, shots: int | str, *, transcripts: bool) -> str:
    """A grid cell: the runs that differ only by seed. Its size reads shots-N (N rows per class) or, where the data
    set is transcribed (no classes), rows-N (N training rows)."""
    return f"{dataset}__{backbone_label(backbone)}__{method}__{'rows' if transcripts else 'shots'}-{shots}"


def run_name(dataset: str, backbone: str, method: str, shots: int | str, seed: int, *, transcripts: bool) -> str:
    return f"{cell_name(dataset, backbone, method, shots, transcripts=transcripts)}__seed-{seed}"


def reads_transcripts(spec: CompareSpec, ds: DatasetSpec) -> bool:
    """Whether a data set's runs are speech recognition (sized in training rows, not rows per class)."""
    return _reads_transcripts(ds.recipe, (*spec.overrides, *ds.overrides))


def _measure_overrides(spec: CompareSpec) -> list[str]:
    known = {f.name for f in dataclasses.fields(EvaluationConfig)}
    out = []
    for f in dataclasses.fields(spec.measure):
        if not getattr(spec.measure, f.name):
            continue
        if f.name in known:
            out.append(f"evaluation.{f.name}=true")
        else:  # an hftl without that measurement: the runs go ahead without it, the report shows no such column
            logger.warning("measure.%s: this hftl's run config has no evaluation.%s; runs go without it", f.name, f.name)
    return out


def _value(value: object) -> str:
    """A value as an override's YAML: JSON is YAML, and quoting keeps paths and 'zoo:' sources strings."""
    return json.dumps(value)


def _fixed(rate: float) -> dict:
    """study.selection of a rate the spec sets: declared, not chosen (the report's checklist says which were tuned)."""
    return {"searched": {"learning_rate": [rate]}, "chosen": {"learning_rate": rate}, "trials": 0,
            "how": "fixed by the spec, not selected"}  # fmt: skip


@functools.lru_cache(maxsize=64)
def _reads_transcripts(recipe: str, overrides: tuple[str, ...]) -> bool:
    """Whether a data set's runs are speech recognition (sized in rows: a transcript data set has no classes)."""
    return load_config(recipe, list(overrides)).task == SpeechRecognition.name


def size_overrides(shots: int | str, transcripts: bool) -> list[str]:
    """A training size as overrides: rows per class, or (transcripts) training rows; "all": the whole train split."""
    value = _value(None if shots == "all" else shots)
    if transcripts:
        return ["data.shots_per_class=null", f"data.max_train_samples={value}"]
    return [f"data.shots_per_class={value}", "data.max_train_samples=null"]


def run_overrides(
    spec: CompareSpec, ds: DatasetSpec, backbone: str, method: str, shots: int | str, seed: int, name: str,
    run_dir: Path, extra: list[str] = (),
) -> list[str]:
    """The overrides of one run, in the order the module docstring gives (``extra``: a selection's choice)."""
    rate = getattr(ds.learning_rates, method)
    transcripts = reads_transcripts(spec, ds)
    return [
        *spec.overrides,
        *ds.overrides,
        # a list is swept by the selection, whose choice (and its record) comes in ``extra``
        *([f"training.learning_rate={_value(rate)}", f"study.selection={_value(json.dumps(_fixed(rate)))}"]
          if isinstance(rate, float) else []),
        *getattr(ds.method_overrides, method),
        *extra,
        f"model.source={_value(backbone)}",
        f"method.name={method}",
        *size_overrides(shots, transcripts),  # the grid's size is the only subsampling
        "data.train_fraction=null",
        f"training.seed={seed}",
        # each seed draws its own training subset (validation and test rows stay the split seed's)
        f"data.subset_seed={seed if spec.resample_subsets else 'null'}",
        "training.resume_from=null",  # an unfinished run starts over: runs are short
        f"name={_value(name)}",
        f"output.dir={_value(str(run_dir))}",
        "output.overwrite=true",  # reruns replace stale or half-written runs (finished ones are skipped)
        "study.per_row=true",  # the contract's paired per-row correctness (test, shifted test)
        *_measure_overrides(spec),
    ]


def make_run(spec: CompareSpec, ds: DatasetSpec, backbone: str, method: str, shots: int | str, seed: int,
             name: str, run_dir: Path, extra: list[str] = (), after: list[str] = ()) -> GridRun:  # fmt: skip
    """One run's config, loaded and checked (``after``: overrides applied last, e.g. a selection run's switches).

    Raises:
        ConfigError: naming the data set and run.
    """
    overrides = [*run_overrides(spec, ds, backbone, method, shots, seed, name, run_dir, extra), *after]
    try:
        cfg = load_config(ds.recipe, overrides)
    except ConfigError as err:
        raise ConfigError(f"dataset {ds.name}, run {name}: {err}") from err
    return GridRun(name, ds.name, cfg.modality, backbone, method, shots, seed, cfg)


def cells(spec: CompareSpec) -> list[tuple[DatasetSpec, str, str, int | str]]:
    """Every (data set, backbone, method, size) of the spec, each data set's recipe checked once.

    Raises:
        ConfigError: a recipe or override that does not make a valid run config (naming the data set).
    """
    backbones = {}
    for ds in spec.datasets:
        try:
            base = load_config(ds.recipe, [*spec.overrides, *ds.overrides])
        except ConfigError as err:
            raise ConfigError(f"dataset {ds.name}: {err}") from err
        backbones[ds.name] = ds.backbones or [base.model.source]
        labels = [backbone_label(b) for b in backbones[ds.name]]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"dataset {ds.name}: backbones {ds.backbones} share a short name {labels}; rename a folder")
    return [
        (ds, backbone, method, shots)
        for shots in spec.shots_per_class
        for ds in spec.datasets
        for backbone in backbones[ds.name]
        for method in spec.methods
    ]


def runs_dir_of(spec: CompareSpec, report_dir: Path) -> Path:
    return Path(spec.runs_dir) if spec.runs_dir else Path(report_dir) / "runs"


def expand(spec: CompareSpec, report_dir: Path, tuned: dict[str, list[str]] | None = None) -> list[GridRun]:
    """Every run of the spec, its config loaded and checked; seeds outermost, so a cut-short grid has whole seeds.

    tuned: per cell name, the overrides a selection chose (after the method's own, before the grid's keys).

    Raises:
        ConfigError: a recipe or override that does not make a valid run config (naming the data set and run).
    """
    runs_dir = runs_dir_of(spec, report_dir)
    grid = cells(spec)
    runs = []
    for seed in spec.seeds:
        for ds, backbone, method, shots in grid:
            transcripts = reads_transcripts(spec, ds)
            name = run_name(ds.name, backbone, method, shots, seed, transcripts=transcripts)
            extra = (tuned or {}).get(cell_name(ds.name, backbone, method, shots, transcripts=transcripts), [])
            runs.append(make_run(spec, ds, backbone, method, shots, seed, name, runs_dir / name, extra))
    return runs
