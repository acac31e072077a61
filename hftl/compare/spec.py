"""The compare spec: which data sets (each with a base recipe), backbones, methods, training sizes and seeds to run.

Typed dataclasses are the schema, as for run configs (hftl/config.py): an unknown key or a wrong type is a
``ConfigError`` naming the key and the spec file. ``hftl config``-style help lives in each field.

    name: default                       # report title (default: the spec file's name)
    methods: [scratch, linear_probe, lora, full, lp_ft]
    shots_per_class: [4, 16, 64]        # training rows per class; "all" = the whole train split
    seeds: [0, 1, 2]
    max_parallel: 2
    executor: local                     # local | ray | slurm (--executor overrides)
    retries: 1                          # a failed run is tried again this many times, then listed
    resources: {cpus: 1, gpus: 0, memory_gb: 4, time_min: 60}   # per run (ray and slurm; local: cpus = threads)
    ray: {address: auto}                # a running cluster; null: a running one if any, else a local one
    slurm: {partition: gpu, array_parallelism: 32}
    tune: {trials: 12, pruner: median}  # search each cell's hyper-parameters on validation first (hftl tune's space file)
    measure: {transferability: true, shift: true, forgetting: true}
    overrides: [training.max_steps=20]  # key=value for every run
    datasets:
      - name: bbc-news
        recipe: recipes/configs/text/minilm_lora.yaml
        backbones: [zoo:minilm-l6]      # default: the recipe's model.source
        overrides: [text.max_length=64]
        learning_rates: {scratch: 5.0e-4, linear_probe: 3.0e-2, lora: 1.0e-3, full: 5.0e-5, lp_ft: 5.0e-5}
        curve_rates: {lora: [2.0e-4]}   # with curve_methods [lora] and a list of lora rates: curve-only points
        method_overrides: {lp_ft: [method.lp_ft.probe_learning_rate=3.0e-2]}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any, Literal

from hftl.config import _help, from_mapping, read_yaml
from hftl.errors import ConfigError
from hftl.run.methods import Method as MethodSpec
from hftl.run.methods import all_methods, method_names

Method = Literal[method_names()]  # type: ignore[valid-type]  # the registry's names, in its (report) order
ALL_METHODS: tuple[str, ...] = method_names()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _per_method(class_name: str, doc: str, annotation: Any, help_of: Callable[[MethodSpec], str], **default: Any) -> type:
    """A dataclass with one field per registered method (a spec section keyed by method name)."""
    fields = [(m.name, annotation, _help(help_of(m), **default)) for m in all_methods()]
    return make_dataclass(class_name, fields, namespace={"__doc__": doc, "__module__": __name__})


MethodLearningRates = _per_method(
    "MethodLearningRates",
    "Peak learning rate per method: one value, or a list swept on validation per (backbone, size) before the seeds "
    "run (compare/selection.py); null keeps the recipe's training.learning_rate.",
    float | list[float] | None, lambda m: f"learning rate(s) of method={m.name}{m.learning_rate_note}", default=None,
)  # fmt: skip
MethodCurveRates = _per_method(
    "MethodCurveRates",
    "Further learning rates of a curve method (spec curve_methods), trained at every seed for the "
    "learning-vs-forgetting curve only: never candidates of the cells' selection, so they widen the curve without "
    "changing which rate the reported runs train with.",
    list[float] | None, lambda m: f"curve-only learning rates of method={m.name}", default=None,
)  # fmt: skip
MethodOverrides = _per_method(
    "MethodOverrides", "key=value overrides applied to one method's runs only.",
    list[str], lambda m: f"overrides of method={m.name} runs", factory=list,
)  # fmt: skip


@dataclass
class DatasetSpec:
    name: str = _help("short name of the data set in run names and the report, e.g. bbc-news", "")
    recipe: str = _help("base recipe YAML of its runs (a path from the working directory)", "")
    backbones: list[str] | None = _help("model sources to compare (zoo:NAME, Hub id, folder); default: the recipe's", None)
    overrides: list[str] = _help("key=value overrides of the recipe for every run of this data set", factory=list)
    learning_rates: MethodLearningRates = _help("peak learning rate per method", factory=MethodLearningRates)
    curve_rates: MethodCurveRates = _help("curve-only learning rates per curve method", factory=MethodCurveRates)
    method_overrides: MethodOverrides = _help("key=value overrides per method", factory=MethodOverrides)

    def __post_init__(self) -> None:
        for method, rate in vars(self.learning_rates).items():
            if isinstance(rate, list) and (not rate or len(set(rate)) != len(rate) or min(rate) <= 0):
                raise ConfigError(f"dataset {self.name}: learning_rates.{method} must be distinct values > 0, got {rate}")
        for method, extra in vars(self.curve_rates).items():
            grid = getattr(self.learning_rates, method)
            if extra is None:
                continue
            if not isinstance(grid, list):
                raise ConfigError(f"dataset {self.name}: curve_rates.{method} extends a curve, which needs "
                                  f"learning_rates.{method} to be a list of rates (got {grid})")  # fmt: skip
            if not extra or len(set(extra)) != len(extra) or min(extra) <= 0 or set(extra) & set(grid):
                raise ConfigError(f"dataset {self.name}: curve_rates.{method} must be distinct values > 0 that "
                                  f"learning_rates.{method} does not list, got {extra} (grid {grid})")  # fmt: skip
        if not self.name or not _NAME.match(self.name):
            raise ConfigError(f"name must be letters, digits, '.', '_' or '-' (it names run folders), got {self.name!r}")
        if not self.recipe:
            raise ConfigError(f"dataset {self.name}: recipe is required (a recipe YAML, e.g. recipes/configs/text/minilm_lora.yaml)")
        if self.backbones is not None and not self.backbones:
            raise ConfigError(f"dataset {self.name}: backbones must name at least one model (or be left out)")


@dataclass
class Measurements:
    """Extra measurements in every run (the run config's evaluation.* switches of the same names)."""

    transferability: bool = _help("LogME and k-NN scores of the initial backbone's frozen features, before training", False)
    shift: bool = _help("the trained model scored on shifted copies of the test split", False)
    forgetting: bool = _help("how much of the source model's ability survives fine-tuning (k-NN, CKA, WER)", False)


Executor = Literal["local", "ray", "slurm"]
EXECUTORS: tuple[str, ...] = ("local", "ray", "slurm")


@dataclass
class Resources:
    """What one run gets (Ray task resources, Slurm job parameters; local: cpus = its threads)."""

    cpus: int | None = _help("CPU cores (= torch threads) per run; null: local divides the machine by max_parallel, others 1", None)
    gpus: int = _help("GPUs per run", 0)
    memory_gb: float | None = _help("memory per run in GB (Ray: a scheduling reservation; Slurm: --mem); null: none asked", None)
    time_min: int = _help("time limit per run in minutes (Slurm: --time; Ray and local: not enforced)", 60)


@dataclass
class RaySettings:
    address: str | None = _help(
        "Ray cluster: 'auto' (the running one), 'HOST:PORT' or 'ray://HOST:10001'; null: RAY_ADDRESS or a running "
        "cluster if there is one, else a local one started for the grid", None
    )


@dataclass
class SlurmSettings:
    cluster: Literal["slurm", "local"] = _help("'slurm' submits with sbatch; 'local' runs the same job arrays here (submitit)", "slurm")
    partition: str | None = _help("Slurm partition (--partition); null: the cluster's default", None)
    array_parallelism: int = _help("most array jobs running at once (--array=...%N)", 32)
    logs_dir: str | None = _help("submitit's job folder (per-job stdout/stderr, pickles); default: REPORT_DIR/slurm", None)
    additional: list[str] = _help("further sbatch options as key=value, e.g. [account=proj, qos=normal]", factory=list)


@dataclass
class CompareSpec:
    name: str | None = _help("title of the report; default: the spec file's name", None)
    methods: list[Method] = _help("methods to compare", factory=lambda: list(ALL_METHODS))
    shots_per_class: list[int | Literal["all"]] = _help(
        "training sizes: rows per class (speech recognition data sets, which have no classes: training rows), or "
        "'all' for the whole train split", factory=lambda: [5, 20, 100, "all"]
    )
    seeds: list[int] = _help(
        "seeds: each sets the initialisation, data order and dropout and (resample_subsets) draws its own training "
        "subset", factory=lambda: [0, 1, 2]
    )
    resample_subsets: bool = _help(
        "each seed draws its own stratified training subset (data.subset_seed = the seed); false: one subset for all",
        True,
    )
    curve_methods: list[Method] = _help(
        "methods whose every listed learning rate also trains every seed, for the learning-vs-forgetting curve "
        "(Biderman 2024: compare LoRA and full along the rate, not at one rate each); these runs go to "
        "RUNS_DIR/curve/ and study.role='curve', apart from the cells' reported runs", factory=list
    )
    selection_seed: int = _help(
        "seed (and training subset) of the selection runs that sweep a list of learning rates on validation", 1000
    )
    datasets: list[DatasetSpec] = _help("data sets, each with its base recipe", factory=list)
    measure: Measurements = _help("extra measurements in every run", factory=Measurements)
    overrides: list[str] = _help("key=value overrides for every run (before the data set's own)", factory=list)
    report_dir: str = _help("where results.csv, the tables, plots and report.html go (--report-dir overrides)", "runs/compare")
    runs_dir: str | None = _help("where the run folders go; default: REPORT_DIR/runs", None)
    max_parallel: int = _help("runs at once (--max-parallel overrides); each gets cores // max_parallel threads", 1)
    keep_checkpoints: bool = _help("keep each finished run's checkpoints/ (large; only resume needs them)", False)
    executor: Executor = _help("where runs execute: local (process pool), ray (a Ray cluster), slurm (submitit job arrays)", "local")
    retries: int = _help("times a failed run is tried again before it is listed as failed", 1)
    resources: Resources = _help("per-run resources", factory=Resources)
    ray: RaySettings = _help("executor: ray", factory=RaySettings)
    slurm: SlurmSettings = _help("executor: slurm", factory=SlurmSettings)
    # `tune:` (a search space, as for `hftl tune --space`): each cell's learning rate etc. searched on validation
    # before its runs; parsed by hftl.tune.space, not by the schema checker.
    tune: Any = None

    def __post_init__(self) -> None:
        for key in ("methods", "shots_per_class", "seeds"):
            values = getattr(self, key)
            if not values:
                raise ConfigError(f"{key} must not be empty")
            if len(set(values)) != len(values):
                raise ConfigError(f"{key} has duplicates: {values}")
        for shots in self.shots_per_class:
            if shots != "all" and shots < 1:
                raise ConfigError(f"shots_per_class: {shots} must be >= 1 or 'all'")
        if self.max_parallel < 1:
            raise ConfigError(f"max_parallel must be >= 1, got {self.max_parallel}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.resources.cpus is not None and self.resources.cpus < 1:
            raise ConfigError(f"resources.cpus must be >= 1, got {self.resources.cpus}")
        if self.resources.gpus < 0 or self.resources.time_min < 1:
            raise ConfigError(f"resources: gpus must be >= 0 and time_min >= 1, got {self.resources}")
        if self.slurm.array_parallelism < 1:
            raise ConfigError(f"slurm.array_parallelism must be >= 1, got {self.slurm.array_parallelism}")
        for item in self.slurm.additional:
            if "=" not in item:
                raise ConfigError(f"slurm.additional: {item!r} is not key=value")
        for ds in self.datasets:
            for method, extra in vars(ds.curve_rates).items():
                if extra is not None and method not in self.curve_methods:
                    raise ConfigError(f"dataset {ds.name}: curve_rates.{method} is set but {method} is not one of "
                                      f"curve_methods {self.curve_methods}")  # fmt: skip
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ConfigError(f"datasets: names must be unique, got {names}")


def check_zoo_backbones(spec: CompareSpec, path: Path) -> None:
    """Every zoo:NAME backbone (with zoo19's @Lk / @random suffixes) names a model of the zoo: an unknown name is an
    error at spec load, before any run, not a failed run an hour later."""
    from hftl import zoo

    models = sorted(e.name for e in zoo.entries() if e.kind == "model")
    for i, ds in enumerate(spec.datasets):
        for source in ds.backbones or []:
            if not source.startswith("zoo:"):
                continue
            name = source.removeprefix("zoo:").split("@", 1)[0]
            if name not in models:
                raise ConfigError(
                    f"datasets[{i}] ({ds.name}).backbones: {source!r} is not a model of the zoo ({path}); "
                    f"zoo models: {', '.join(models)}"
                )


def load_spec(path: str | Path) -> CompareSpec:
    """Read and check a compare spec.

    Raises:
        ConfigError: missing file, invalid YAML, unknown key, wrong type or invalid value (naming key and file).
    """
    path = Path(path)
    raw = read_yaml(path, "compare spec")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of spec keys, got {type(raw).__name__}")
    raw = dict(raw)
    # A list of sections is beyond the run-config schema's checker: each entry is checked on its own.
    datasets_raw: Any = raw.pop("datasets", None)
    tune_raw: Any = raw.pop("tune", None)
    if not isinstance(datasets_raw, list) or not datasets_raw:
        raise ConfigError(f"datasets ({path}): list at least one data set (name, recipe, ...)")
    datasets = []
    for i, entry in enumerate(datasets_raw):
        try:
            datasets.append(from_mapping(DatasetSpec, entry, str(path), prefix=f"datasets[{i}]."))
        except ConfigError as err:
            if f"datasets[{i}]" in str(err):  # an unknown key already names its place
                raise
            raise ConfigError(f"datasets[{i}]: {err}") from err
    spec = from_mapping(CompareSpec, raw, str(path))
    spec.datasets = datasets
    try:
        spec.__post_init__()  # again, now with the data sets
    except ConfigError as err:
        raise ConfigError(f"{err} ({path})") from err
    if spec.name is None:
        spec.name = path.stem
    check_zoo_backbones(spec, path)
    if tune_raw is not None:
        from hftl.tune.space import parse_search

        spec.tune = parse_search(tune_raw, f"{path} tune")
    return spec
