"""One trial: the recipe with the trial's values, trained in this process, scored on validation only.

A trial's run never looks at the test split (evaluation.test=false), skips the extra measurements and saves no
model: it exists to produce a validation number. Its best checkpoint is picked on the searched metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hftl.config import Config, load_config
from hftl.errors import ConfigError
from hftl.tune.space import Param

TRIAL_ONLY = [
    "evaluation.test=false",  # the objective is validation only: test stays unseen until the final run
    "evaluation.transferability=false",
    "evaluation.shift=false",
    "evaluation.forgetting=false",
    "output.overwrite=true",
    "output.save_merged=false",
    "export.enabled=false",
    "push.enabled=false",
    "training.resume_from=null",
]


def as_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]


@dataclass
class Objective:
    """The recipe (CONFIG + overrides) and the searched space; metric and direction default from the recipe."""

    config: str | None
    overrides: list[str]
    space: dict[str, Param]
    metric: str = ""
    direction: str = ""
    base: Config = field(init=False)

    def __post_init__(self) -> None:
        self.base = load_config(self.config, self.overrides)
        self.metric = self.metric or self.base.training.metric_for_best
        self.direction = self.direction or ("maximize" if self.base.training.greater_is_better else "minimize")
        for key, param in self.space.items():  # every key and bound makes a valid config, before any trial runs
            for value in param.values_to_check():
                try:
                    self.recipe({key: value})
                except ConfigError as err:
                    raise ConfigError(f"search space {key}={value!r}: {err}") from err

    @property
    def method(self) -> str:
        return self.base.method.name

    def _recipe_overrides(self, params: dict[str, Any]) -> list[str]:
        direction = "true" if self.direction == "maximize" else "false"
        return [
            *self.overrides, *as_overrides(params),
            f"training.metric_for_best={json.dumps(self.metric)}", f"training.greater_is_better={direction}",
        ]  # fmt: skip

    def recipe(self, params: dict[str, Any]) -> Config:
        """The recipe with these values: what `hftl train` reruns for the best trial (test split included)."""
        return load_config(self.config, self._recipe_overrides(params))

    def trial_config(self, params: dict[str, Any], run_dir: Path) -> Config:
        extra = [*TRIAL_ONLY, f"output.dir={json.dumps(str(run_dir))}"]
        return load_config(self.config, [*self._recipe_overrides(params), *extra])

    def run(self, params: dict[str, Any], run_dir: Path, hooks: list) -> dict[str, Any]:
        """Train the trial; returns its results (results['eval'][metric] is the objective's value)."""
        from hftl.recipe import run

        results = run(self.trial_config(params, run_dir), hooks=hooks)
        if self.metric not in results.get("eval", {}):
            raise ConfigError(f"metric {self.metric!r} is not among the validation metrics {sorted(results.get('eval', {}))}")
        return results
