"""Expand a compare spec into ordinary run configs: one per data set x backbone x method x training size x seed.

Each run is the data set's base recipe with, in this order, the spec's overrides, the data set's overrides, the
method's learning rate and overrides, then the grid's own keys (model.source, method.name, data.shots_per_class,
training.seed, name, output.dir, output.overwrite, evaluation.* of ``measure``, ...). Names are deterministic:
``DATASET__BACKBONE__METHOD__shots-N__seed-S``, so a rerun of the same spec finds its earlier runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from hftl.compare.spec import CompareSpec
from hftl.config import Config, EvaluationConfig, load_config
from hftl.errors import ConfigError

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


def backbone_label(source: str) -> str:
    """Short name of a model source for run names: zoo:NAME -> NAME, a Hub id or folder -> its last part."""
    label = source.removeprefix("zoo:").rstrip("/").split("/")[-1]
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in label) or "model"


def cell_name(dataset: str, backbone: str, method: str, shots: int | str) -> str:
    """A grid cell: the runs that differ only by seed."""
    return f"{dataset}__{backbone_label(backbone)}__{method}__shots-{shots}"


def run_name(dataset: str, backbone: str, method: str, shots: int | str, seed: int) -> str:
    return f"{cell_name(dataset, backbone, method, shots)}__seed-{seed}"


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


def expand(spec: CompareSpec, report_dir: Path, tuned: dict[str, list[str]] | None = None) -> list[GridRun]:
    """Every run of the spec, its config loaded and checked; seeds outermost, so a cut-short grid has whole seeds.

    tuned: per cell name, the overrides a search chose (after the method's own, before the grid's keys).

    Raises:
        ConfigError: a recipe or override that does not make a valid run config (naming the data set and run).
    """
    runs_dir = Path(spec.runs_dir) if spec.runs_dir else Path(report_dir) / "runs"
    measure = _measure_overrides(spec)
    bases = {}
    for ds in spec.datasets:
        try:
            bases[ds.name] = load_config(ds.recipe, [*spec.overrides, *ds.overrides])
        except ConfigError as err:
            raise ConfigError(f"dataset {ds.name}: {err}") from err
        labels = [backbone_label(b) for b in ds.backbones or [bases[ds.name].model.source]]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"dataset {ds.name}: backbones {ds.backbones} share a short name {labels}; rename a folder")

    runs = []
    for seed in spec.seeds:
        for shots in spec.shots_per_class:
            for ds in spec.datasets:
                for backbone in ds.backbones or [bases[ds.name].model.source]:
                    for method in spec.methods:
                        name = run_name(ds.name, backbone, method, shots, seed)
                        rate = getattr(ds.learning_rates, method)
                        overrides = [
                            *spec.overrides,
                            *ds.overrides,
                            *([f"training.learning_rate={_value(rate)}"] if rate is not None else []),
                            *getattr(ds.method_overrides, method),
                            *(tuned or {}).get(cell_name(ds.name, backbone, method, shots), []),
                            f"model.source={_value(backbone)}",
                            f"method.name={method}",
                            f"data.shots_per_class={_value(None if shots == 'all' else shots)}",
                            "data.max_train_samples=null",  # the grid's size is the only subsampling
                            "data.train_fraction=null",
                            f"training.seed={seed}",
                            "training.resume_from=null",  # an unfinished run starts over: runs are short
                            f"name={_value(name)}",
                            f"output.dir={_value(str(runs_dir / name))}",
                            "output.overwrite=true",  # reruns replace stale or half-written runs (finished ones are skipped)
                            *measure,
                        ]
                        try:
                            cfg = load_config(ds.recipe, overrides)
                        except ConfigError as err:
                            raise ConfigError(f"dataset {ds.name}, run {name}: {err}") from err
                        runs.append(GridRun(name, ds.name, cfg.modality, backbone, method, shots, seed, cfg))
    return runs
