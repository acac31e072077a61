"""Linear probe on cached frozen features vs the step-by-step probe: whole-run time and test accuracy, three modalities.

    python bench/probe_cache.py [--rounds 2] [--modalities text,vision,audio] [--quick]

Each modality's linear-probe recipe (``--config`` replaces it; method.name=linear_probe is set, and augmentation
off, as the cache needs: the vision recipe's crop and flip are turned off for both arms) runs through ``hftl.recipe.run`` with training.feature_cache=false and =true in alternating
rounds. Every cached run starts cold (the feature files it wrote are deleted before the next round), so its time
includes computing the features once; one more cached run reads them back (warm). Times are whole runs (data, model,
training, test), as a user waits for them; the ratio is the median of the rounds' ratios.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness

PROBE_CONFIGS = {
    "text": "recipes/configs/text/minilm_linear_probe.yaml",
    "vision": "recipes/configs/vision/dinov2_linear_probe.yaml",
    "audio": "recipes/configs/audio/whisper_linear_probe.yaml",
}


def no_augment(config: str) -> list[str]:
    """Overrides setting every augmentation option the config turns on back to its default (off)."""
    import json

    from hftl.config import load_config
    from hftl.evaluation.cached_probe import augmentation_settings

    cfg = harness.load(config)
    default = load_config(None, [f"modality={cfg.modality}"])
    out = []
    for setting in augmentation_settings(cfg):
        key = setting.split("=", 1)[0]
        value = default
        for part in key.split("."):
            value = getattr(value, part)
        out.append(f"{key}={json.dumps(value) if value is None or isinstance(value, list) else value}")
    return out


def _features_folder() -> Path:
    from hftl.zoo import hftl_home

    return hftl_home() / "cache" / "features"


def one_run(config: str, modality: str, cached: bool, out: Path, extra: list[str]) -> dict[str, Any]:
    from hftl.recipe import run

    before = set(_features_folder().glob("*.npz"))
    # the same SGD probe both ways (cached features vs the loop); the default L-BFGS probe always reads cached features
    cfg = harness.load(config, "method.name=linear_probe", "method.probe.solver=sgd", *no_augment(config),
                       f"training.feature_cache={str(cached).lower()}",
                       f"output.dir={out}", "output.overwrite=true", "output.save_merged=false", *extra)  # fmt: skip
    results = run(cfg)
    written = set(_features_folder().glob("*.npz")) - before
    return {"wall_s": results["run"]["wall_s"], "train_s": results["train"]["runtime_s"],
            "test_accuracy": results["test"].get("accuracy"), "written": sorted(map(str, written))}  # fmt: skip


def _delete(paths: list[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)
    paths.clear()


def bench_modality(modality: str, config: str, rounds: int, extra: list[str]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"step": [], "cached": []}
    leftover: list[str] = []  # features the last cached run wrote: deleted before the next one starts
    with tempfile.TemporaryDirectory(prefix="hftl-bench-probe-") as tmp:
        for r in range(rounds):
            for arm in ("step", "cached") if r % 2 == 0 else ("cached", "step"):
                if arm == "cached":
                    _delete(leftover)
                row = one_run(config, modality, arm == "cached", Path(tmp) / arm, extra)
                leftover += row.pop("written")
                runs[arm].append(row)
                harness.log(f"  {modality} {arm}: {row['wall_s']:.1f} s, test acc {row['test_accuracy']}")
        warm = one_run(config, modality, True, Path(tmp) / "warm", extra)  # reads the last cached run's features
        _delete(leftover + warm.pop("written"))
    ratios = [s["wall_s"] / c["wall_s"] for s, c in zip(runs["step"], runs["cached"], strict=True)]
    return {"modality": modality, "config": config, "runs": runs, "warm": warm, "ratio": statistics.median(ratios),
            "ratios": ratios}  # fmt: skip


def main(argv: list[str]) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    args = harness.setup(p, argv)
    extra = ["data.max_train_samples=64", "data.max_eval_samples=32", "training.epochs=2"] if args.quick else []
    if args.quick:
        args.rounds = 1
    times: dict[str, float] = {}
    results = []
    for modality, config in harness.recipe_configs(args, PROBE_CONFIGS).items():
        with harness.section(f"probe_cache {modality}", times):
            results.append(bench_modality(modality, config, args.rounds, extra))
    print(harness.cpu_line(args.threads) + "\n")
    print(f"Whole `hftl train` runs of the linear-probe recipes{' (quick: 64 train rows, 2 epochs)' if args.quick else ''}, "
          f"{args.rounds} alternating rounds; cached runs start cold (features computed once inside the run).\n")  # fmt: skip
    rows = []
    for r in results:
        step, cached = r["runs"]["step"], r["runs"]["cached"]
        rows.append([
            r["modality"], statistics.median(x["wall_s"] for x in step), statistics.median(x["wall_s"] for x in cached),
            r["warm"]["wall_s"], f"{r['ratio']:.2f}x", statistics.median(x["train_s"] for x in step),
            statistics.median(x["train_s"] for x in cached),
            f"{step[0]['test_accuracy']:.4f} / {cached[0]['test_accuracy']:.4f}",
        ])  # fmt: skip
    print(harness.markdown_table(
        ["modality", "step-by-step s", "cached (cold) s", "cached (warm) s", "speed-up (cold)", "step train loop s",
         "cached train loop s", "test acc step / cached"], rows))  # fmt: skip
    harness.write_results(args.out, "probe_cache", {"quick": args.quick, "section_seconds": times, "results": results})


if __name__ == "__main__":
    main(sys.argv[1:])
