"""Scaling: training throughput vs batch size and vs input size (tokens / image side / clip seconds), per modality.

    python bench/scaling.py [--steps 6] [--batch-sizes 8,16,32] [--modalities text,vision,audio] [--quick]

Each point is a fresh build of the modality's recipe with one setting changed, then ``--steps`` optimizer steps of
hftl's loop (the first ones untimed). The batch-size sweep keeps the recipe's input size; the input-size sweep
keeps the recipe's batch size. ms per sample shows how cost grows: flat = linear in the number of samples.
"""

from __future__ import annotations

import sys
from typing import Any

import harness

# The input-size setting of each modality and the values swept (the recipe's own value is always included).
INPUT_SIZES = {
    "text": ("text.max_length", [64, 128, 256]),
    "vision": ("vision.image_size", [56, 112, 224]),
    "audio": ("audio.clip_seconds", [1, 2, 4]),
}
WARMUP = 2  # a fresh build per point: fewer warm-up steps than the loop comparison, to keep the sweep short


def point(config: str, steps: int, *overrides: str) -> float:
    cfg = harness.load(config, *overrides)
    built = harness.build(cfg)
    clock = harness.hftl_loop(built, steps, sampler=harness.FixedOrder(len(built.train), cfg.training.seed))
    return clock.samples_per_second(cfg.training.batch_size, warmup=WARMUP)


def bench_modality(config: str, steps: int, batch_sizes: list[int], quick: bool) -> dict[str, Any]:
    cfg = harness.load(config)
    key, sizes = INPUT_SIZES[cfg.modality]
    section, field = key.split(".")
    own_size = getattr(getattr(cfg, section), field)
    if quick:
        sizes = [own_size]
    rows = []
    for bs in sorted(set(batch_sizes) | {cfg.training.batch_size}):
        sps = point(config, steps, f"training.batch_size={bs}")
        rows.append({"sweep": "batch_size", "batch_size": bs, key: own_size, "samples_per_second": sps})
        harness.log(f"  {cfg.modality} batch {bs}: {sps:.2f} samples/s")
    for size in sorted(set(sizes) | {own_size}):
        if size == own_size:  # measured in the batch sweep already
            sps = next(r["samples_per_second"] for r in rows if r["batch_size"] == cfg.training.batch_size)
        else:
            sps = point(config, steps, f"{key}={size}")
            harness.log(f"  {cfg.modality} {key}={size}: {sps:.2f} samples/s")
        rows.append({"sweep": key, "batch_size": cfg.training.batch_size, key: size, "samples_per_second": sps})
    return {"modality": cfg.modality, "config": config, "input_size_key": key, "steps": steps, "rows": rows}


def main(argv: list[str]) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6, help=f"optimizer steps per point (the first {WARMUP} untimed)")
    p.add_argument("--batch-sizes", default="8,16,32")
    args = harness.setup(p, argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.quick:
        args.steps, batch_sizes = WARMUP + 2, batch_sizes[:1]
    times: dict[str, float] = {}
    results = []
    for modality, config in harness.recipe_configs(args).items():
        with harness.section(f"scaling {modality}", times):
            results.append(bench_modality(config, args.steps, batch_sizes, args.quick))
    table = []
    for r in results:
        key = r["input_size_key"]
        for row in r["rows"]:
            varied = f"batch {row['batch_size']}" if row["sweep"] == "batch_size" else f"{key}={row[key]}"
            fixed = f"{key}={row[key]}" if row["sweep"] == "batch_size" else f"batch {row['batch_size']}"
            sps = row["samples_per_second"]
            table.append([r["modality"], varied, fixed, sps, 1000 / sps])
    print(f"hftl's loop, {args.steps} steps per point ({WARMUP} untimed), {args.threads} threads\n")
    print(harness.markdown_table(["modality", "varied", "fixed", "samples/s", "ms per sample"], table))
    harness.write_results(args.out, "scaling", {"quick": args.quick, "section_seconds": times, "results": results})


if __name__ == "__main__":
    main(sys.argv[1:])
