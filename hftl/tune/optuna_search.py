"""The embedded search: an Optuna study in OUT/study.db (SQLite) that a rerun continues where it stopped.

The study holds ``trials`` finished (complete or pruned) trials in the end: a search killed after 5 of 20
continues with trial 6 on rerun. The sampler is reseeded with the number of trials already stored, so a resumed
search does not replay the first trials' draws. A trial that was running when the search died is marked failed
once its heartbeat is older than the grace period (Optuna's own stale-trial check), and its budget is redrawn.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hftl.errors import ConfigError, HftlError
from hftl.tune.objective import Objective
from hftl.tune.pruning import OptunaPruning
from hftl.tune.space import Param, SearchSpec

STUDY = "hftl"
HEARTBEAT_S, GRACE_S = 10, 30


def suggest(trial: Any, key: str, param: Param) -> Any:
    if param.choices is not None:
        return trial.suggest_categorical(key, list(param.choices))
    if param.type == "int":
        return trial.suggest_int(key, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(key, param.low, param.high, log=param.log)


def _pruner(name: str) -> Any:
    import optuna

    if name == "median":  # prune below the median of earlier trials at the same evaluation, after 2 full trials
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _finished(study: Any) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))


def open_study(objective: Objective, search: SearchSpec, out_dir: Path) -> Any:
    """Create OUT/study.db or load it; a study of another recipe or space is an error, not a silent mix."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in practice
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{out_dir.resolve() / 'study.db'}", heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
        )
    signature = json.dumps({"recipe": objective.recipe({}).to_dict(), "space": {k: repr(v) for k, v in objective.space.items()},
                            "metric": objective.metric, "direction": objective.direction}, sort_keys=True)  # fmt: skip
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    study = optuna.create_study(study_name=STUDY, storage=storage, direction=objective.direction, load_if_exists=True)
    if STUDY not in existing:
        study.set_user_attr("signature", signature)
    elif study.user_attrs.get("signature") != signature:
        raise ConfigError(
            f"{out_dir / 'study.db'} holds a search of another recipe, space or metric: "
            "give a new --out folder (or delete that one) to start another search"
        )
    seed = search.seed + len(study.trials)  # a resumed search draws anew instead of replaying the first draws
    study.sampler = (
        optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, max(2, search.trials // 3)))
        if search.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    study.pruner = _pruner(search.pruner)
    return study


def run_optuna(objective: Objective, search: SearchSpec, out_dir: Path, echo: Callable[[str], None]) -> Any:
    """Run trials until the study holds search.trials finished ones; returns the study."""
    import optuna

    study = open_study(objective, search, out_dir)
    done = _finished(study)
    echo(f"study {out_dir / 'study.db'}: {done} finished trial(s) stored, {max(0, search.trials - done)} to run")

    def trial_fn(trial: optuna.Trial) -> float:
        params = {key: suggest(trial, key, p) for key, p in objective.space.items()}
        run_dir = out_dir / "trials" / f"trial-{trial.number:04d}"
        hook = OptunaPruning(trial, objective.metric)
        results = objective.run(params, run_dir, [hook])
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("steps", results["train"]["steps"])
        trial.set_user_attr("total_steps", results["train"]["total_steps"])
        trial.set_user_attr("evaluations", hook.evaluations)
        value = results["eval"][objective.metric]
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        if hook.pruned_at_step is not None:
            trial.set_user_attr("pruned_at_step", hook.pruned_at_step)
            echo(f"trial {trial.number}: pruned at step {hook.pruned_at_step}  ({shown})")
            raise optuna.TrialPruned()
        echo(f"trial {trial.number}: {objective.metric}={value:.4f}  ({shown})")
        return value

    failures = 0
    while _finished(study) < search.trials:
        before = len(study.trials)
        study.optimize(trial_fn, n_trials=search.trials - _finished(study), catch=(HftlError, RuntimeError, ValueError))
        failed = [t for t in study.trials[before:] if t.state == optuna.trial.TrialState.FAIL]
        failures += len(failed)
        for t in failed:
            echo(f"trial {t.number}: FAILED ({t.system_attrs.get('fail_reason', 'see the log above')})")
        if failures >= search.trials:
            raise HftlError(f"{failures} trials failed; the last: {failed[-1].system_attrs.get('fail_reason', '?')}")
    return study
