"""bf16 vs fp32 on the CPU at hand: training step throughput, inference latency and peak memory, per recipe.

    python bench/precision.py [--samples 256] [--rounds 3] [--modalities text,vision,audio] [--quick]

Per recipe (the three LoRA recipes and MiniLM full fine-tuning): hftl's loop with training.mixed_precision=no and
=bf16 in alternating rounds (samples/s, the ratio is the median of the rounds' ratios); PyTorch eager inference at
batch 1 and 32, fp32 vs bf16 autocast, timed in shuffled blocks (hftl.deploy.latency.time_blocks); peak resident
memory of a short training run in a fresh process per precision. Each rate is also given as a share of the CPU's
peak for its dtype (FLOPs counted by torch on the model, peak from the CPU flags and clock). On a CPU without bf16
instructions the bf16 rows are refused (hftl.run.precision) and the table says so.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import statistics
import subprocess
import sys
from typing import Any

import harness
import torch

RECIPES = [("text", "lora"), ("vision", "lora"), ("audio", "lora"), ("text", "full")]
PRECISIONS = ("no", "bf16")


def _with(cfg, **training):
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, **training))


def _batch(built, size: int) -> dict[str, torch.Tensor]:
    rows = [built.validation[i % len(built.validation)] for i in range(size)]
    return built.collate(rows)


def train_speeds(config: str, method: str, steps: int, rounds: int) -> dict[str, Any]:
    cfg = harness.load(config, f"method.name={method}")
    speeds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for r in range(rounds):
        for precision in PRECISIONS if r % 2 == 0 else reversed(PRECISIONS):
            built = harness.build(_with(cfg, mixed_precision=precision))
            sampler = harness.FixedOrder(len(built.train), cfg.training.seed)
            speeds[precision].append(harness.hftl_loop(built, steps, sampler=sampler).samples_per_second(cfg.training.batch_size))
            harness.log(f"  {cfg.modality} {method} {precision}: {speeds[precision][-1]:.2f} samples/s")
    built = harness.build(cfg)
    batch = _batch(built, cfg.training.batch_size)
    built.model.train()
    flops_per_sample = harness.count_flops(built.model, batch, backward=True) / cfg.training.batch_size
    per_round = [b / f for f, b in zip(speeds["no"], speeds["bf16"], strict=True)]
    return {
        "samples_per_second": speeds,
        "median": {p: statistics.median(v) for p, v in speeds.items()},
        "ratio": statistics.median(per_round),
        "train_flops_per_sample": flops_per_sample,
        "batch_size": cfg.training.batch_size,
    }


def inference_ms(config: str, repeats: int) -> dict[str, Any]:
    from hftl.deploy.latency import time_blocks
    from hftl.run.precision import autocast

    cfg = harness.load(config)
    built = harness.build(cfg)
    model = built.model.eval()
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for size in (1, 32):
            batch = {k: v for k, v in _batch(built, size).items() if k != "labels"}
            out[f"flops_batch_{size}"] = harness.count_flops(model, batch, backward=False)

            def run(precision: str, b=batch) -> None:
                with autocast(precision):
                    model(**b)

            out[f"batch_{size}"] = time_blocks(
                {"fp32": lambda: run("no"), "bf16": lambda: run("bf16")}, repeats=repeats, rounds=3
            )
    return out


def _child(config: str, method: str, precision: str, steps: int) -> dict[str, Any]:
    """Peak RSS of the whole process, and of the training alone: Linux's high-water mark is reset after the build
    (/proc/self/clear_refs 5), so loading data and weights (the same for both precisions) does not hide the loop's."""
    from pathlib import Path

    cfg = harness.load(config, f"method.name={method}", f"training.mixed_precision={precision}")
    built = harness.build(cfg)
    Path("/proc/self/clear_refs").write_text("5")
    harness.hftl_loop(built, steps)
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "train_peak_rss_mb": round(int(hwm.split()[1]) / 1024, 1)}  # fmt: skip


def peak_memory(config: str, method: str, steps: int, threads: int) -> dict[str, float]:
    out = {}
    for precision in PRECISIONS:
        cmd = [sys.executable, __file__, "--child", config, method, precision, str(steps), "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        out[precision] = json.loads(proc.stdout.strip().splitlines()[-1])["train_peak_rss_mb"]
    return out


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        _, config, method, precision, steps, *rest = argv
        torch.set_num_threads(int(rest[1]) if rest else 1)
        print(json.dumps(_child(config, method, precision, int(steps))))
        return
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=256, help="training samples per timed run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=12, help="timed inference calls per backend and batch size")
    args = harness.setup(p, argv)
    if args.quick:
        args.samples, args.rounds, args.repeats = 0, 1, 2
    from hftl.run import cpu

    if not cpu.native_bf16():
        print(f"{harness.cpu_line(args.threads)}\n\nThis CPU has no bf16 instructions: hftl refuses bf16 here (fp32 only).")
        return
    configs = harness.recipe_configs(args)
    times: dict[str, float] = {}
    results = []
    for modality, method in RECIPES:
        if modality not in configs:
            continue
        config = configs[modality]
        batch = harness.load(config).training.batch_size
        steps = max(harness.WARMUP_STEPS + 3, -(-args.samples // batch))
        with harness.section(f"precision {modality} {method}", times):
            row = {"modality": modality, "method": method, "steps": steps}
            row["train"] = train_speeds(config, method, steps, args.rounds)
            row["memory_mb"] = peak_memory(config, method, min(steps, 6), args.threads)
            if method == "lora":  # inference does not depend on how the head was trained
                row["inference"] = inference_ms(config, args.repeats)
            results.append(row)
    t = args.threads
    print(harness.cpu_line(t) + "\n")
    print(f"Training: hftl's loop, {args.rounds} alternating rounds, median samples/s; bf16/fp32 = median of the rounds' "
          "ratios. Share of peak: FLOPs counted by torch per training sample x samples/s over the dtype's peak.\n")  # fmt: skip
    rows = []
    for r in results:
        tr, mem = r["train"], r["memory_mb"]
        rate = {p: tr["median"][p] * tr["train_flops_per_sample"] for p in PRECISIONS}
        rows.append([
            r["modality"], f"{r['method']}, {r['steps']} steps x {tr['batch_size']}",
            tr["median"]["no"], tr["median"]["bf16"], f"{tr['ratio']:.2f}x",
            harness.peak_share(rate["no"], "fp32", t), harness.peak_share(rate["bf16"], "bf16", t),
            mem["no"], mem["bf16"], f"{mem['bf16'] / mem['no']:.2f}",
        ])  # fmt: skip
    print(harness.markdown_table(
        ["modality", "run", "fp32 samples/s", "bf16 samples/s", "bf16 / fp32", "fp32 % of peak", "bf16 % of peak",
         "fp32 train peak RSS MiB", "bf16 train peak RSS MiB", "bf16 / fp32 memory"], rows))  # fmt: skip
    print("\nInference: PyTorch eager, median ms per call, shuffled blocks.\n")
    rows = []
    for r in results:
        inf = r.get("inference")
        if not inf:
            continue
        for size in (1, 32):
            ms = inf[f"batch_{size}"]
            flops = inf[f"flops_batch_{size}"]
            rows.append([
                r["modality"], size, ms["fp32"], ms["bf16"], f"{ms['fp32'] / ms['bf16']:.2f}x",
                harness.peak_share(flops / (ms["fp32"] / 1e3), "fp32", t), harness.peak_share(flops / (ms["bf16"] / 1e3), "bf16", t),
            ])  # fmt: skip
    print(harness.markdown_table(["modality", "batch", "fp32 ms", "bf16 ms", "speed-up", "fp32 % of peak", "bf16 % of peak"], rows))
    harness.write_results(args.out, "precision", {"quick": args.quick, "section_seconds": times, "results": results})


if __name__ == "__main__":
    main(sys.argv[1:])
