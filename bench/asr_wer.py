"""Speech recognition transfer on unseen voices AND sentences: the source model vs LoRA vs full fine-tuning.

    OMP_NUM_THREADS=1 python bench/asr_wer.py --jobs 6             # 3 seeds x (lora, full), the two ASR recipes
    OMP_NUM_THREADS=1 python bench/asr_wer.py --seeds 0 --methods lora --set training.max_steps=2   # a smoke run

Each (method, seed) is one ``hftl train`` of recipes/configs/audio/whisper_asr_{method}.yaml (run directories under
runs/asr_wer/); up to --jobs runs at once, seed-major (one thread each), so the methods' training times share one load. The table comes from their results.json files only: test WER/CER (mean and spread over seeds), the
source model's WER on the same split (measurements.source_model, taken before training), the relative cut, the
trainable-parameter share, training time, WER on test_noisy (10 dB SNR) and forgetting = WER on the source_probe split
(en-us voice, held-out fortunes text, never trained on) before -> after. Writes runs/asr_wer/summary.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The budget of the measurement (on 2 shared cores): 20 LoRA / full steps of batch 8 (160 clips, a third of an epoch),
# 30 rows of each evaluated split, transcripts of at most 48 tokens (the longest sentence has 11 words).
BUDGET = ["training.max_steps=20", "training.eval_steps=20", "data.max_eval_samples=30", "asr.max_new_tokens=48"]


def _start(method: str, seed: int, out: Path, overrides: list[str], baseline: bool) -> subprocess.Popen | None:
    """Start one run (None when its results.json exists: a restarted script reuses finished runs)."""
    run_dir = out / f"{method}_seed{seed}"
    if (run_dir / "results.json").is_file():
        return None
    config = REPO / "recipes" / "configs" / "audio" / f"whisper_asr_{method}.yaml"
    cmd = [sys.executable, "-m", "hftl.cli", "train", str(config), f"training.seed={seed}", f"output.dir={run_dir}",
           "output.overwrite=true", "training.tracking=none", f"asr.source_baseline={str(baseline).lower()}",
           *BUDGET, *overrides]  # fmt: skip
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, cwd=REPO, stdout=(out / f"{method}_seed{seed}.log").open("w"), stderr=subprocess.STDOUT)


def source_scores(out: Path, overrides: list[str]) -> dict[str, Any]:
    """The source model's WER/CER on the same (subsampled) splits, without training: the recipe's setup() alone."""
    from hftl.config import load_config
    from hftl.recipe import setup

    config = REPO / "recipes" / "configs" / "audio" / "whisper_asr_lora.yaml"
    cfg = load_config(config, [f"output.dir={out / 'source'}", "output.overwrite=true", "training.tracking=none",
                               "asr.source_baseline=true", *BUDGET, *overrides])  # fmt: skip
    scores = setup(cfg).measurements["source_model"]
    (out / "source_model.json").write_text(json.dumps(scores, indent=1))
    return scores


def _results(method: str, seed: int, out: Path) -> dict[str, Any]:
    return json.loads((out / f"{method}_seed{seed}" / "results.json").read_text())


def _mean(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(runs: dict[str, list[dict[str, Any]]], out: Path) -> dict[str, Any]:
    """The table's numbers; the source model's from a run that measured it, else from --source-only's file."""
    measured = [r["source_model"] for records in runs.values() for r in records if "source_model" in r]
    source = measured[0] if measured else json.loads((out / "source_model.json").read_text())
    summary: dict[str, Any] = {"source": {k: v["wer"] for k, v in source.items()}, "methods": {}}
    for method, records in runs.items():
        wer = [r["test"]["wer"] for r in records]
        mean, spread = _mean(wer)
        extra = {name: _mean([r["extra_splits"][name]["wer"] for r in records])[0] for name in records[0].get("extra_splits", {})}
        summary["methods"][method] = {
            "seeds": [r["run"]["seed"] for r in records],
            "test_wer": wer, "test_wer_mean": mean, "test_wer_std": spread,
            "test_cer_mean": _mean([r["test"]["cer"] for r in records])[0],
            "relative_cut": 1 - mean / source["test"]["wer"],
            "trainable_share": records[0]["params"]["trainable"] / records[0]["params"]["total"],
            "train_seconds_mean": _mean([r["train"]["runtime_s"] for r in records])[0],
            "extra_splits_wer_mean": extra,
        }  # fmt: skip
    return summary


def table(summary: dict[str, Any]) -> str:
    src = summary["source"]
    lines = [
        "| model | test WER (mean ± sd) | rel. cut | trainable | train s | noisy test WER | source_probe WER (before -> after) |",
        "|---|---|---|---|---|---|---|",
        f"| source (tiny.en) | {src['test']:.3f} | - | - | - | {src.get('test_noisy', float('nan')):.3f} | "
        f"{src.get('source_probe', float('nan')):.3f} |",
    ]
    for method, m in summary["methods"].items():
        extra = m["extra_splits_wer_mean"]
        lines.append(
            f"| {method} ({len(m['seeds'])} seeds) | {m['test_wer_mean']:.3f} ± {m['test_wer_std']:.3f} | "
            f"{100 * m['relative_cut']:.0f}% | {100 * m['trainable_share']:.2f}% | {m['train_seconds_mean']:.0f} | "
            f"{extra.get('test_noisy', float('nan')):.3f} | {src.get('source_probe', float('nan')):.3f} -> "
            f"{extra.get('source_probe', float('nan')):.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["lora", "full"], choices=["lora", "full", "scratch"])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "asr_wer")
    parser.add_argument("--source-only", action="store_true", help="only the source model's scores (no training)")
    parser.add_argument("--summary-only", action="store_true", help="the table of the runs finished so far")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for every run (after BUDGET)")
    args = parser.parse_args(argv)
    if args.summary_only:
        done = {m: [_results(m, s, args.out) for s in args.seeds if (args.out / f"{m}_seed{s}" / "results.json").is_file()]
                for m in args.methods}  # fmt: skip
        print(table(summarise({m: r for m, r in done.items() if r}, args.out)))
        return
    if args.source_only:
        print(json.dumps(source_scores(args.out, args.overrides), indent=1))
        return
    # Seed-major order, up to --jobs runs at once: the methods' training times are taken under one load.
    # The source model's WER depends on neither method nor seed: the first run measures it (before training).
    queue = [(m, s) for s in args.seeds for m in args.methods]
    running: list[tuple[str, int, subprocess.Popen]] = []
    while queue or running:
        while queue and len(running) < args.jobs:
            method, seed = queue.pop(0)
            proc = _start(method, seed, args.out, args.overrides, baseline=(method, seed) == (args.methods[0], args.seeds[0]))
            if proc is not None:
                running.append((method, seed, proc))
        for method, seed, proc in list(running):
            if proc.poll() is not None:
                running.remove((method, seed, proc))
                if proc.returncode != 0:
                    sys.exit(f"{method} seed {seed} failed: see {args.out / f'{method}_seed{seed}.log'}")
        time.sleep(1)
    runs = {m: [_results(m, s, args.out) for s in args.seeds] for m in args.methods}
    summary = summarise(runs, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(table(summary))


if __name__ == "__main__":
    main()
