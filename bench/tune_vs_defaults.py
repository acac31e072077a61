"""`hftl tune` against a recipe's own defaults, on one short budget for both (the closing numbers of issue 13).

For each recipe: tune on validation (Optuna, TRIALS trials, the method's default space, median pruning), then
train the recipe's defaults and the tuned best.yaml with the same budget and report validation and test accuracy.

    OMP_NUM_THREADS=1 python bench/tune_vs_defaults.py [--trials 6] [--out runs/bench/tune]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RECIPES = {
    "minilm_lora": "recipes/configs/text/minilm_lora.yaml",
    "minilm_linear_probe": "recipes/configs/text/minilm_linear_probe.yaml",
}
# A short budget for every run here: 60 steps of 16 rows at 64 tokens, validation/test capped at 150 rows each.
BUDGET = ["training.max_steps=60", "training.eval_steps=20", "text.max_length=64", "data.max_eval_samples=150",
          "training.tracking=none", "output.save_merged=false"]  # fmt: skip


def hftl(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hftl.cli", *args], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--out", default="runs/bench/tune")
    parser.add_argument("--only", choices=list(RECIPES))
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for name, recipe in RECIPES.items():
        if args.only and name != args.only:
            continue
        search = out / name
        tune_s = hftl("tune", recipe, *BUDGET, "--trials", str(args.trials), "--out", str(search))
        hftl("train", recipe, *BUDGET, f"output.dir={out / name}-default", "output.overwrite=true")
        hftl("train", str(search / "best.yaml"), f"output.dir={out / name}-tuned", "output.overwrite=true")
        summary = json.loads((search / "summary.json").read_text())
        for label in ("default", "tuned"):
            results = json.loads((out / f"{name}-{label}" / "results.json").read_text())
            config = (out / f"{name}-{label}" / "config.yaml").read_text()
            lr = next(line.split(":")[1].strip() for line in config.splitlines() if line.strip().startswith("learning_rate:"))
            rows.append((name, label, lr, results["eval"].get("accuracy"), results["test"].get("accuracy"),
                         summary["trials"] if label == "tuned" else "", f"{tune_s / 60:.1f} min" if label == "tuned" else ""))  # fmt: skip
    print("| recipe | config | learning rate | validation acc | test acc | trials | search wall time |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        name, label, lr, val, test, trials, wall = row
        print(f"| {name} | {label} | {lr} | {val:.3f} | {test:.3f} | {trials} | {wall} |")


if __name__ == "__main__":
    main()
