"""Test accuracy over seeds of a default and its faster alternative: does the alternative cost accuracy beyond the
seed spread, per recipe? The axis (``--compare``): bf16 autocast vs fp32 (precision), or eager vs SDPA attention.

    python bench/precision_accuracy.py [--compare precision|attention] [--seeds 1,2,3] [--jobs 2] [--size small|recipe]
                                       [--modalities ...] [--full text] [--quick]

Whole ``hftl train`` runs (training, validation, test) of the three LoRA recipes and MiniLM full fine-tuning, each
with both settings of the axis for every seed (``AXES``: precision sets training.mixed_precision=no and =bf16;
attention sets model.attn_implementation=sdpa and =eager at the recipe's own precision). Runs go to a pool of
``--jobs`` fresh processes of one thread each (one process per run, so peak memory is the run's own); the two runs
of one (recipe, seed) are queued next to each other so they share the machine alike and their time ratio compares.
``--size small`` (default) shrinks data and epochs to fit a shared 2-core machine (SMALL below, printed with the
table); ``--size recipe`` runs the recipes as shipped. The alternative counts as "within the seed spread" when the
difference of the mean test accuracies is at most the larger of the two settings' seed standard deviations (and at
least one test row), see ``within_spread``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
from typing import Any

import harness

FULL_RECIPES = {"text": "recipes/configs/text/minilm_full.yaml"}  # full fine-tuning measured where a recipe ships it

# axis -> (config key, (baseline, alternative), the labels of the two in the table)
AXES = {
    "precision": ("training.mixed_precision", ("no", "bf16"), ("fp32", "bf16")),
    "attention": ("model.attn_implementation", ("sdpa", "eager"), ("sdpa", "eager")),
}
# Reduced sizes for a 2-core CPU shared with other jobs: about a minute of CPU per run at one thread; the subset draw is fixed (data.seed),
# seeds change initialisation, dropout, augmentation and batch order.
SMALL = {
    "text": ["data.max_train_samples=192", "data.max_eval_samples=48", "data.max_test_samples=300", "training.epochs=2"],
    "vision": ["data.max_train_samples=384", "data.max_eval_samples=48", "data.max_test_samples=300", "training.epochs=1"],
    "audio": ["data.max_train_samples=192", "data.max_eval_samples=48", "data.max_test_samples=270", "training.epochs=2"],
}
QUICK = ["data.max_train_samples=32", "data.max_eval_samples=16", "data.max_test_samples=16", "training.epochs=1"]


def one_run(config: str, setting: str, seed: int, extra: list[str]) -> dict[str, Any]:
    """One ``hftl train`` run with ``setting`` (KEY=VALUE of the axis) in this (fresh, one-thread) process; the
    results the table needs, with the setting's value as ``variant``."""
    import torch

    from hftl.recipe import run

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="hftl-precision-") as out:
        cfg = harness.load(config, setting, f"training.seed={seed}", f"output.dir={out}",
                           "output.overwrite=true", "output.save_merged=false", *extra)  # fmt: skip
        results = run(cfg)
    return {
        "variant": setting.partition("=")[2],
        "precision": results["run"]["mixed_precision"],
        "seed": seed,
        "train_s": results["train"]["runtime_s"],
        "samples_per_second": results["train"]["samples_per_second"],
        "test_accuracy": results["test"]["accuracy"],
        "test_rows": results["data"]["test"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def recipe_list(args) -> dict[str, tuple[str, list[str]]]:
    """"MODALITY METHOD" -> (config, overrides): the LoRA recipes (``--config`` replaces them), then full fine-tuning.

    Full fine-tuning runs its own recipe (its learning rate differs); where ``--config`` replaced the modality's
    recipe, that config with method.name=full instead.
    """
    lora = harness.recipe_configs(args)
    replaced = {item.partition("=")[0] for item in args.config}
    recipes = {f"{m} lora": (config, []) for m, config in lora.items()}
    for modality in (m.strip() for m in args.full.split(",") if m.strip()):
        if modality not in lora:
            continue
        if modality in replaced or modality not in FULL_RECIPES:
            recipes[f"{modality} full"] = (lora[modality], ["method.name=full"])
        else:
            recipes[f"{modality} full"] = (str(harness.repo_path(FULL_RECIPES[modality])), [])
    return recipes


def within_spread(base: list[float], other: list[float], test_rows: int | None) -> tuple[float, float, bool]:
    """(other - base mean accuracy, the noise it is compared with, whether it is within it)."""
    delta = statistics.mean(other) - statistics.mean(base)
    spread = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (base, other))
    noise = max(spread, 1 / test_rows if test_rows else 0.0)
    return delta, noise, abs(delta) <= noise + 1e-12


def main(argv: list[str]) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--compare", choices=sorted(AXES), default="precision", help="the axis: precision (fp32 vs bf16) or "
                   "attention (sdpa vs eager, at the recipes' own precision)")
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds, each run with both settings")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    p.add_argument("--size", choices=("small", "recipe"), default="small", help="reduced sizes (SMALL) or the recipes as shipped")
    p.add_argument("--full", default="text", help="modalities whose full fine-tuning recipe also runs (comma-separated; '' for none)")
    args = harness.setup(p, argv)
    recipes = recipe_list(args)
    from hftl.run import cpu

    key, values, labels = AXES[args.compare]
    if args.compare == "precision" and not cpu.native_bf16():  # bf16 would be refused (hftl.run.precision): say so now
        raise SystemExit(f"this CPU ({cpu.cpu_model()}) has no bf16 instructions: there is no bf16 to compare with fp32")
    seeds = [int(s) for s in args.seeds.split(",")]
    load_before = os.getloadavg()[0]
    jobs = []
    for name, (config, overrides) in recipes.items():
        modality = name.split()[0]
        extra = [*overrides, *(QUICK if args.quick else SMALL[modality] if args.size == "small" else [])]
        for seed in seeds:
            for value in values:  # both settings of one seed side by side
                jobs.append((name, config, f"{key}={value}", seed, extra))
    times: dict[str, float] = {}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in recipes}
    context = multiprocessing.get_context("spawn")
    with harness.section(f"{args.compare}_accuracy", times), concurrent.futures.ProcessPoolExecutor(
        args.jobs, mp_context=context, max_tasks_per_child=1
    ) as pool:
        futures = {pool.submit(one_run, config, setting, seed, extra): name for name, config, setting, seed, extra in jobs}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]].append(future.result())
            harness.log(f"  {futures[future]}: {results[futures[future]][-1]}")
    load_after = os.getloadavg()[0]
    print(harness.cpu_line(1) + "\n")
    sizes = "; ".join(f"{m}: {' '.join(o)}" for m, o in ({"all": QUICK} if args.quick else SMALL if args.size == "small" else {}).items())
    print(f"Whole `hftl train` runs, seeds {args.seeds}, {args.jobs} one-thread processes side by side, "
          f"load average {load_before:.2f} before, {load_after:.2f} after; sizes: {sizes or 'the recipes as shipped'}. "
          f"{describe_axis(args.compare)} Time ratio: median over seeds of {labels[0]} train s / {labels[1]} train s "
          "(the two ran side by side).\n")  # fmt: skip
    rows, verdicts = [], {}
    base, alt = values
    for name in recipes:
        by = {v: sorted((r for r in results[name] if r["variant"] == v), key=lambda r: r["seed"]) for v in values}
        acc = {v: [r["test_accuracy"] for r in by[v]] for v in values}
        delta, noise, ok = within_spread(acc[base], acc[alt], by[base][0]["test_rows"])
        verdicts[name] = {"delta": delta, "noise": noise, "within_spread": ok}
        ratio = statistics.median(f["train_s"] / b["train_s"] for f, b in zip(by[base], by[alt], strict=True))
        rows.append([name, *(" / ".join(f"{a:.4f}" for a in acc[v]) for v in values),
                     *(f"{statistics.mean(acc[v]):.4f}" for v in values), f"{delta:+.4f}", f"{noise:.4f}",
                     "yes" if ok else "no", *(statistics.median(r["samples_per_second"] for r in by[v]) for v in values),
                     f"{ratio:.2f}x", " / ".join(f"{max(r['peak_rss_mib'] for r in by[v]):.0f}" for v in values)])  # fmt: skip
    a, b = labels
    print(harness.markdown_table(["recipe", f"{a} test acc per seed", f"{b} test acc per seed", f"{a} mean", f"{b} mean",
                                  f"{b} - {a}", "seed spread (max sd)", "within spread", f"{a} samples/s",
                                  f"{b} samples/s", f"{b} speed-up", f"peak RSS MiB {a} / {b}"], rows))  # fmt: skip
    harness.write_results(args.out, f"{args.compare}_accuracy", {
        "compare": args.compare, "key": key, "values": list(values), "quick": args.quick, "size": args.size,
        "seeds": seeds, "load_before": load_before, "load_after": load_after, "section_seconds": times,
        "results": results, "verdicts": verdicts})  # fmt: skip


def describe_axis(compare: str) -> str:
    """What the two settings are, for the line above the table."""
    if compare == "precision":
        return "training.mixed_precision=no vs bf16."
    return "model.attn_implementation=sdpa vs eager, each at the recipe's training.mixed_precision (auto: bf16 where the CPU has it)."


if __name__ == "__main__":
    main(sys.argv[1:])
