"""What a search leaves behind, the same for Optuna and Ray Tune: OUT/trials.csv, OUT/best.yaml, OUT/plots/*.png.

best.yaml is an ordinary recipe (the input recipe with the best trial's values, test split on again):
``hftl train OUT/best.yaml`` reruns it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hftl.config import save_config
from hftl.tune.objective import Objective


@dataclass
class TrialRecord:
    number: int
    state: str  # complete | pruned | failed | running
    value: float | None  # the validation metric (best evaluation of the trial)
    params: dict[str, Any]
    steps: int | None = None  # optimizer steps trained (fewer than total_steps when pruned)
    total_steps: int | None = None
    evaluations: int | None = None
    pruned_at_step: int | None = None
    seconds: float | None = None
    run_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def from_optuna(study: Any) -> list[TrialRecord]:
    """One record per stored trial; a pruned trial's value is the best evaluation it reached."""
    better = max if study.direction.name == "MAXIMIZE" else min
    records = []
    for t in study.trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        attrs = t.user_attrs
        value = t.value if t.value is not None else better(t.intermediate_values.values(), default=None)
        records.append(TrialRecord(
            t.number, t.state.name.lower(), value, dict(t.params),
            attrs.get("steps"), attrs.get("total_steps"), attrs.get("evaluations"), attrs.get("pruned_at_step"),
            seconds, attrs.get("run_dir", ""),
        ))  # fmt: skip
    return records


def best_trial(records: list[TrialRecord], direction: str) -> TrialRecord:
    complete = [r for r in records if r.state == "complete" and r.value is not None]
    if not complete:
        raise ValueError("no trial completed")
    pick = max if direction == "maximize" else min
    return pick(complete, key=lambda r: r.value)


def write_outputs(records: list[TrialRecord], objective: Objective, out_dir: Path, wall_s: float) -> TrialRecord:
    """trials.csv, best.yaml, summary.json and the plots; returns the best trial."""
    best = best_trial(records, objective.direction)
    keys = list(objective.space)
    with (out_dir / "trials.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["trial", "state", f"validation_{objective.metric}", *keys, "steps", "total_steps",
                         "evaluations", "pruned_at_step", "seconds", "run_dir"])  # fmt: skip
        for r in records:
            writer.writerow([r.number, r.state, r.value, *(r.params.get(k) for k in keys), r.steps, r.total_steps,
                             r.evaluations, r.pruned_at_step, None if r.seconds is None else round(r.seconds, 1), r.run_dir])  # fmt: skip
    recipe = objective.recipe(best.params)
    save_config(recipe, out_dir / "best.yaml")
    counts = {s: sum(r.state == s for r in records) for s in sorted({r.state for r in records})}
    summary = {"metric": f"validation {objective.metric}", "direction": objective.direction, "best_trial": best.number,
               "best_value": best.value, "best_params": best.params, "trials": counts, "wall_s": round(wall_s, 1),
               "best_recipe": str(out_dir / "best.yaml")}  # fmt: skip
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_plots(records, objective, out_dir / "plots")
    return best


def write_plots(records: list[TrialRecord], objective: Objective, plots: Path) -> None:
    """metric_vs_trial.png (best so far as a line, pruned trials hollow), slices.png (metric vs each value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    plots.mkdir(parents=True, exist_ok=True)
    scored = [r for r in records if r.value is not None and not (isinstance(r.value, float) and math.isnan(r.value))]
    better = max if objective.direction == "maximize" else min
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for state, style in (("complete", dict(color="C0")), ("pruned", dict(facecolors="none", edgecolors="C1"))):
        chosen = [r for r in scored if r.state == state]
        ax.scatter([r.number for r in chosen], [r.value for r in chosen], label=state, **style)
    done = sorted((r for r in scored if r.state == "complete"), key=lambda r: r.number)
    running, best = [], None
    for r in done:
        best = r.value if best is None else better(best, r.value)
        running.append(best)
    ax.step([r.number for r in done], running, where="post", color="C2", label="best so far")
    ax.set(xlabel="trial", ylabel=f"validation {objective.metric}", title="search progress")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "metric_vs_trial.png", dpi=110)
    plt.close(fig)

    keys = list(objective.space)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        param = objective.space[key]
        for state, color in (("complete", "C0"), ("pruned", "C1")):
            chosen = [r for r in scored if r.state == state and key in r.params]
            xs = [r.params[key] if param.choices is None else str(r.params[key]) for r in chosen]
            ax.scatter(xs, [r.value for r in chosen], color=color, s=18, label=state)
        if param.log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # decades only: minor labels collide
        ax.set(xlabel=key.split(".")[-1], ylabel=f"validation {objective.metric}")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("slices: metric vs each searched value")
    fig.tight_layout()
    fig.savefig(plots / "slices.png", dpi=110)
    plt.close(fig)


def write_importance(study: Any, objective: Objective, plots: Path) -> dict[str, float]:
    """Optuna's importance of each searched value (its default evaluator; needs a few completed trials).

    {} (and no plot) when it cannot say: fewer than two completed trials, or one searched value.
    """
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importance = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        return {}
    if not importance:
        return {}
    plots.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 0.5 + 0.4 * len(importance)))
    ax.barh(list(importance)[::-1], list(importance.values())[::-1], color="C0")
    ax.set(xlabel="importance (Optuna's evaluator)", title=f"what decides validation {objective.metric}")
    fig.tight_layout()
    fig.savefig(plots / "importance.png", dpi=110)
    plt.close(fig)
    return dict(importance)

