"""The search: which run-config keys to vary and how, the validation metric, the budget and the pruner.

A space file (``hftl tune CONFIG --space SPACE.yaml``, or the ``tune`` section of a compare spec):

    metric: accuracy          # a validation metric; default: the recipe's training.metric_for_best
    direction: maximize       # default: from training.greater_is_better
    trials: 20                # finished (complete + pruned) trials the study should hold; --trials overrides
    sampler: tpe              # tpe | random
    pruner: median            # median | asha | none (asha = successive halving on the evaluations)
    seed: 0
    params:                   # for every method; a key of `methods` replaces it for that method
      training.learning_rate: {low: 1.0e-5, high: 1.0e-2, log: true}
      training.epochs: {low: 1, high: 4, type: int}
      method.lora.r: {choices: [4, 8, 16]}
    methods:
      linear_probe: {training.learning_rate: {low: 1.0e-3, high: 1.0, log: true}}

Without `params` / `methods` a method searches its DEFAULT_SPACES entry below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hftl.config import read_yaml
from hftl.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One searched key: a float or int range (log-uniform when log), or a list of choices."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    type: Literal["float", "int"] = "float"
    choices: tuple[Any, ...] | None = None

    def values_to_check(self) -> list[Any]:
        return list(self.choices) if self.choices is not None else [self.cast(self.low), self.cast(self.high)]

    def cast(self, value: Any) -> Any:
        return int(round(value)) if self.type == "int" else float(value)


def _lr(low: float, high: float) -> Param:
    return Param(low, high, log=True)


_DECAY = Param(0.0, 0.1)
_WARMUP = Param(0.0, 0.2)
# Per method: the learning rate decides most (a probe wants a large step, full fine-tuning a small one).
DEFAULT_SPACES: dict[str, dict[str, Param]] = {
    "linear_probe": {"training.learning_rate": _lr(1e-4, 1.0), "training.weight_decay": _DECAY},
    "lora": {
        "training.learning_rate": _lr(1e-5, 1e-2), "method.lora.r": Param(choices=(4, 8, 16)),
        "training.weight_decay": _DECAY, "training.warmup_ratio": _WARMUP,
    },
    "full": {"training.learning_rate": _lr(1e-6, 1e-3), "training.weight_decay": _DECAY, "training.warmup_ratio": _WARMUP},
    "lp_ft": {
        "training.learning_rate": _lr(1e-6, 1e-3), "method.lp_ft.probe_learning_rate": _lr(1e-4, 1.0),
        "training.warmup_ratio": _WARMUP,
    },
    "scratch": {"training.learning_rate": _lr(1e-5, 1e-2), "training.weight_decay": _DECAY, "training.warmup_ratio": _WARMUP},
}  # fmt: skip


@dataclass
class SearchSpec:
    metric: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    trials: int = 20
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "asha", "none"] = "median"
    seed: int = 0
    params: dict[str, Param] | None = None
    methods: dict[str, dict[str, Param]] = field(default_factory=dict)

    def space_for(self, method: str) -> dict[str, Param]:
        if method in self.methods:
            return self.methods[method]
        if self.params is not None:
            return self.params
        if method not in DEFAULT_SPACES:
            raise ConfigError(f"no default search space for method {method!r}: give `params` in the space file")
        return DEFAULT_SPACES[method]


def _param(key: str, raw: Any, origin: str) -> Param:
    where = f"{key} ({origin})"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected {{low, high[, log, type]}} or {{choices: [...]}}, got {raw!r}")
    unknown = set(raw) - {"low", "high", "log", "type", "choices"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: low, high, log, type, choices")
    if "choices" in raw:
        if not isinstance(raw["choices"], list) or not raw["choices"] or len(raw) > 1:
            raise ConfigError(f"{where}: choices must be a non-empty list, alone")
        return Param(choices=tuple(raw["choices"]))
    kind = raw.get("type", "float")
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}: type must be float or int, got {kind!r}")
    try:
        low, high = float(raw["low"]), float(raw["high"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: low and high must both be numbers ({err})") from err
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if not low < high or (log and low <= 0):
        raise ConfigError(f"{where}: need low < high{' and low > 0 (log scale)' if log else ''}, got {low}, {high}")
    return Param(low, high, log, kind)


def _params(raw: Any, origin: str, prefix: str) -> dict[str, Param]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{prefix} ({origin}): expected a mapping of run-config keys (e.g. training.learning_rate)")
    return {key: _param(f"{prefix}.{key}", value, origin) for key, value in raw.items()}


def parse_search(raw: Any, origin: str) -> SearchSpec:
    """A SearchSpec from plain data (a space file or a compare spec's `tune` section).

    Raises:
        ConfigError: unknown key, wrong type or empty range, naming the key and origin.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping (metric, trials, params, ...), got {type(raw).__name__}")
    raw = dict(raw)
    spec = SearchSpec()
    if "params" in raw:
        spec.params = _params(raw.pop("params"), origin, "params")
    methods = raw.pop("methods", {}) or {}
    if not isinstance(methods, dict):
        raise ConfigError(f"methods ({origin}): expected a mapping method -> params")
    spec.methods = {m: _params(p, origin, f"methods.{m}") for m, p in methods.items()}
    for key, value in raw.items():
        if key not in ("metric", "direction", "trials", "sampler", "pruner", "seed"):
            raise ConfigError(f"unknown key '{key}' ({origin}); known: metric, direction, trials, sampler, pruner, seed, params, methods")
        setattr(spec, key, value)
    checks = {
        "direction": spec.direction in (None, "maximize", "minimize"),
        "sampler": spec.sampler in ("tpe", "random"),
        "pruner": spec.pruner in ("median", "asha", "none"),
        "trials": isinstance(spec.trials, int) and not isinstance(spec.trials, bool) and spec.trials >= 1,
        "seed": isinstance(spec.seed, int) and not isinstance(spec.seed, bool),
        "metric": spec.metric is None or isinstance(spec.metric, str),
    }
    for key, ok in checks.items():
        if not ok:
            raise ConfigError(f"{key} ({origin}): invalid value {getattr(spec, key)!r}")
    return spec


def load_search(path: str | Path | None) -> SearchSpec:
    """Read a space file; None: the method's default space with the defaults above."""
    if path is None:
        return SearchSpec()
    path = Path(path)
    raw = read_yaml(path, "search space file")
    return parse_search(raw, str(path))
