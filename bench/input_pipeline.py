"""Input pipeline: can data loading + preprocessing + augmentation feed the training step? Per modality.

    python bench/input_pipeline.py [--batches 8] [--workers 0,1] [--modalities text,vision,audio] [--quick]

For each recipe (its augmentation on), three speeds in samples/s over the same batches:

    data only    iterating the training DataLoader without the model (decode, resize / tokenise / log-mel, augment, collate)
    step only    forward + backward + optimizer step on batches already in memory: what the model can consume
    loop         hftl's training loop end to end, for each ``--workers`` setting (DataLoader worker processes)

With ``num_workers=0`` loading and the step run one after the other, so the loop loses the data's share of each
step: ``step only / data only`` (the share of a step's time that preparing its batch takes). With workers they
overlap, but on few cores the workers take CPU from the step.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any

import harness
import torch


def data_only(built: harness.Built, batches: int, workers: int) -> float:
    from torch.utils.data import DataLoader

    cfg = built.cfg
    loader = DataLoader(
        built.train, batch_size=cfg.training.batch_size, sampler=harness.FixedOrder(len(built.train), cfg.training.seed),
        collate_fn=built.collate, num_workers=workers,
    )  # fmt: skip
    iterator = iter(loader)
    next(iterator)  # worker start-up and first-batch costs are not the steady state
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(iterator)["labels"])
    return n / (time.perf_counter() - start)


def step_only(built: harness.Built, batches: int) -> float:
    """Optimizer steps on pre-loaded batches (AdamW like the loop; no clipping or schedule: a lower bound on cost)."""
    from torch.utils.data import DataLoader

    cfg = built.cfg
    loader = iter(DataLoader(built.train, batch_size=cfg.training.batch_size, collate_fn=built.collate))
    ready = [next(loader) for _ in range(min(batches, 4))]  # a few distinct batches, reused
    model = built.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    n, start = 0, None
    for i in range(batches + harness.WARMUP_STEPS):
        if i == harness.WARMUP_STEPS:
            start = time.perf_counter()
        batch = ready[i % len(ready)]
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if start is not None:
            n += len(batch["labels"])
    return n / (time.perf_counter() - start)


def bench_modality(config: str, batches: int, workers: list[int]) -> dict[str, Any]:
    cfg = harness.load(config)
    built = harness.build(cfg)
    data = data_only(built, batches, cfg.training.num_workers)
    step = step_only(built, batches)
    loop = {}
    for w in workers:
        wcfg = replace(cfg, training=replace(cfg.training, num_workers=w))
        built = harness.build(wcfg)
        clock = harness.hftl_loop(built, batches + harness.WARMUP_STEPS, sampler=harness.FixedOrder(len(built.train), cfg.training.seed))
        loop[w] = clock.samples_per_second(cfg.training.batch_size)
    return {
        "modality": cfg.modality,
        "config": config,
        "batch_size": cfg.training.batch_size,
        "batches": batches,
        "recipe_num_workers": cfg.training.num_workers,
        "data_only": data,
        "step_only": step,
        "loop": loop,
        "data_share_of_step": step / data,
    }


def main(argv: list[str]) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=8, help="timed batches per measurement")
    p.add_argument("--workers", default="0,1", help="DataLoader workers to run the loop with (comma-separated)")
    args = harness.setup(p, argv)
    if args.quick:
        args.batches = 2
    workers = [int(w) for w in args.workers.split(",")]
    times: dict[str, float] = {}
    results = []
    for modality, config in harness.recipe_configs(args).items():
        with harness.section(f"input_pipeline {modality}", times):
            results.append(bench_modality(config, args.batches, workers))
    rows = [
        [r["modality"], r["batch_size"], r["data_only"], r["step_only"], f"{r['data_only'] / r['step_only']:.1f}x",
         f"{100 * r['data_share_of_step']:.1f}%", *(r["loop"][w] for w in workers)]
        for r in results
    ]  # fmt: skip
    print(f"samples/s, {args.batches} batches each, {args.threads} threads; data only with the recipe's workers "
          f"({', '.join(str(r['recipe_num_workers']) for r in results)})\n")  # fmt: skip
    print(harness.markdown_table(
        ["modality", "batch", "data only", "step only", "data / step", "data time per step",
         *(f"loop, {w} workers" for w in workers)],
        rows,
    ))  # fmt: skip
    harness.write_results(args.out, "input_pipeline", {"quick": args.quick, "section_seconds": times, "results": results})


if __name__ == "__main__":
    main(sys.argv[1:])
