"""Ray Tune driving the same objective as the embedded search, for a Ray cluster.

Each trial is a Ray Tune function trainable running the recipe in-process on a worker; its evaluations go to
Ray Tune as they happen (pruning.RayTuneReport), so ASHA (pruner: asha) or the median stopping rule
(pruner: median) ends bad trials early. The sampler is Optuna's TPE through ``OptunaSearch`` (random: Ray's own).
The experiment lives in OUT/ray_tune/; a rerun restores it and finishes the trials still to do.
Every node must see OUT (shared storage) and have hftl installed like the driver.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hftl.errors import HftlError
from hftl.run import rundir
from hftl.tune.objective import Objective
from hftl.tune.pruning import RayTuneReport
from hftl.tune.records import TrialRecord
from hftl.tune.space import Param, SearchSpec

EXPERIMENT = "ray_tune"


def _domain(param: Param) -> Any:
    from ray import tune

    if param.choices is not None:
        return tune.choice(list(param.choices))
    if param.type == "int":
        low, high = int(param.low), int(param.high) + 1  # Ray's upper bound is exclusive
        return tune.lograndint(low, high) if param.log else tune.randint(low, high)
    return tune.loguniform(param.low, param.high) if param.log else tune.uniform(param.low, param.high)


def _trainable(params: dict[str, Any], objective: Objective, trials_dir: str) -> None:
    from ray import tune

    run_dir = Path(trials_dir) / tune.get_context().get_trial_id()
    objective.run(params, run_dir, [RayTuneReport(objective.metric, objective.direction == "maximize")])


def _evaluations_per_trial(objective: Objective) -> int:
    tc = objective.base.training
    if tc.eval_steps and tc.max_steps:
        return max(1, math.ceil(tc.max_steps / tc.eval_steps))
    return max(1, tc.epochs) if tc.eval_steps is None else 100


def run_ray_tune(
    objective: Objective, search: SearchSpec, out_dir: Path, address: str | None, echo: Callable[[str], None]
) -> list[TrialRecord]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule
    from ray.tune.search.optuna import OptunaSearch

    out_dir = out_dir.resolve()
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=address or "auto", log_to_driver=False, configure_logging=False)
    except ConnectionError:
        if address:
            raise HftlError(f"--ray-address {address}: no Ray cluster answers there") from None
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        mode = "max" if objective.direction == "maximize" else "min"
        evaluations = _evaluations_per_trial(objective)
        scheduler = {
            # max_t one past a full trial's evaluations: ASHA stops only what it prunes, a full trial ends by itself
            "asha": lambda: ASHAScheduler(time_attr="evaluation", max_t=evaluations + 1, grace_period=1),
            "median": lambda: MedianStoppingRule(time_attr="evaluation", grace_period=1, min_samples_required=2),
            "none": FIFOScheduler,
        }[search.pruner]()
        trainable = tune.with_parameters(_trainable, objective=objective, trials_dir=str(out_dir / "trials"))
        path = out_dir / EXPERIMENT
        if tune.Tuner.can_restore(str(path)):
            echo(f"restoring the Ray Tune experiment in {path}")
            tuner = tune.Tuner.restore(str(path), trainable, resume_errored=True)
        else:
            searcher = OptunaSearch(seed=search.seed) if search.sampler == "tpe" else None
            tuner = tune.Tuner(
                trainable,
                param_space={key: _domain(p) for key, p in objective.space.items()},
                tune_config=tune.TuneConfig(
                    metric=objective.metric, mode=mode, num_samples=search.trials, search_alg=searcher, scheduler=scheduler
                ),
                run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(out_dir), verbose=0),
            )
        grid = tuner.fit()
    finally:
        ray.shutdown()
    evaluations = _evaluations_per_trial(objective)
    records = []
    for i, result in enumerate(grid):
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id", "")
        finished = (out_dir / "trials" / trial_id / rundir.RESULTS).is_file() or metrics.get("evaluation", 0) >= evaluations
        state = "failed" if result.error else ("complete" if finished else "pruned")
        records.append(TrialRecord(
            i, state, metrics.get("best"), {k: v for k, v in (result.config or {}).items() if k in objective.space},
            metrics.get("step"), None, metrics.get("evaluation"), None if finished else metrics.get("step"),
            metrics.get("time_total_s"), str(out_dir / "trials" / trial_id),
        ))  # fmt: skip
    return records
