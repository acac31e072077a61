"""A compare spec's `tune` section: each grid cell's hyper-parameters searched on validation before its runs.

The search runs on the cell's first seed (hftl tune's objective: validation only, test never seen), once per cell;
all seeds of the cell then train with the values it chose. Studies live in REPORT_DIR/tune/CELL/ and resume like
`hftl tune`: a rerun of the grid reuses finished searches and the skip rule keeps finished runs.
On executor ray the searches run as Ray Tune experiments on the same cluster; otherwise Optuna in the driver.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from hftl.compare.grid import GridRun, cell_name
from hftl.compare.spec import CompareSpec
from hftl.config import save_config
from hftl.tune import tune
from hftl.tune.objective import as_overrides


def tune_cells(spec: CompareSpec, runs: list[GridRun], report_dir: Path, executor: str,
               echo: Callable[[str], None]) -> dict[str, list[str]]:  # fmt: skip
    """Per cell name, the overrides of the best trial of its search."""
    chosen: dict[str, list[str]] = {}
    first_seed = spec.seeds[0]
    for run in runs:
        if run.seed != first_seed:
            continue
        cell = cell_name(run.dataset, run.backbone, run.method, run.shots, transcripts=run.transcribes)
        out = Path(report_dir) / "tune" / cell
        out.mkdir(parents=True, exist_ok=True)
        base = out / "base.yaml"
        save_config(run.config, base)
        echo(f"tuning {cell}")
        best, trials = tune(
            str(base), [], spec.tune, out, executor="ray" if executor == "ray" else "local",
            ray_address=spec.ray.address, echo=lambda line: echo(f"  {line}"),
        )  # fmt: skip
        record = {
            "searched": {key.rsplit(".", 1)[-1]: str(param) for key, param in spec.tune.space_for(run.method).items()},
            "chosen": {key.rsplit(".", 1)[-1]: value for key, value in best.params.items()},
            "metric": run.config.training.metric_for_best, "split": "validation", "value": best.value,
            "trials": len(trials), "selection_seed": run.seed, "how": f"hftl tune ({out})",
        }  # fmt: skip
        chosen[cell] = [*as_overrides(best.params), f"study.selection={json.dumps(json.dumps(record))}"]
    return chosen
