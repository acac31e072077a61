"""`hftl tune CONFIG --space SPACE.yaml`: hyper-parameter search of one recipe on its validation split.

    space.py          the space file: searched keys and ranges (per method defaults), metric, trials, pruner
    objective.py      one trial = the recipe with the trial's values, trained in-process, scored on validation only
    pruning.py        Trainer hooks reporting each evaluation (Optuna pruning, Ray Tune schedulers)
    optuna_search.py  the embedded default: an Optuna study in OUT/study.db that a rerun continues
    ray_search.py     Ray Tune driving the same objective on a Ray cluster (ASHA or median stopping)
    records.py        OUT/trials.csv, OUT/best.yaml (a normal recipe), OUT/summary.json, OUT/plots/
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from hftl.errors import ConfigError
from hftl.tune.objective import Objective
from hftl.tune.records import TrialRecord, write_importance, write_outputs
from hftl.tune.space import SearchSpec, load_search

ENGINES = ("local", "ray")


def tune(
    config: str | None,
    overrides: list[str],
    search: SearchSpec,
    out_dir: str | Path,
    trials: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[TrialRecord, list[TrialRecord]]:
    """Search, then write OUT/best.yaml, trials.csv, summary.json and plots; returns (best trial, all trials).

    Raises:
        ConfigError: a bad recipe, space or executor (before any trial runs).
        HftlError: every trial failed.
    """
    if executor not in ENGINES:
        raise ConfigError(f"--executor {executor!r}: hftl tune runs on {list(ENGINES)} (local = Optuna in this process)")
    if trials is not None:
        if trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {trials}")
        search.trials = trials
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = Objective(config, overrides, {}, search.metric or "", search.direction or "")
    objective = Objective(config, overrides, search.space_for(probe.method), probe.metric, probe.direction)
    echo(f"searching {', '.join(objective.space)} for method {objective.method}: "
         f"{search.trials} trials, {objective.direction} validation {objective.metric}, pruner {search.pruner}")  # fmt: skip
    started = time.perf_counter()
    if executor == "local":
        from hftl.tune.optuna_search import run_optuna
        from hftl.tune.records import from_optuna

        study = run_optuna(objective, search, out_dir, echo)
        records = from_optuna(study)
        write_importance(study, objective, out_dir / "plots")
    else:
        from hftl.tune.ray_search import run_ray_tune

        records = run_ray_tune(objective, search, out_dir, ray_address, echo)
    best = write_outputs(records, objective, out_dir, time.perf_counter() - started)
    shown = ", ".join(f"{k}={v}" for k, v in best.params.items())
    echo(f"best: trial {best.number}, validation {objective.metric}={best.value:.4f} ({shown})")
    echo(f"recipe: {out_dir / 'best.yaml'}  (hftl train {out_dir / 'best.yaml'}), trials: {out_dir / 'trials.csv'}")
    return best, records


__all__ = ["SearchSpec", "load_search", "tune"]
