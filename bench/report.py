"""Run every benchmark and write BENCHMARKS.md: each table under the exact command that produced it (``make bench``).

    python bench/report.py [--only NAME,...] [--output BENCHMARKS.md]

The inference benchmark uses ``runs/demo`` (what ``make demo`` trains: the MiniLM recipe, 3 epochs) as its text run
when it exists; otherwise it trains its own short runs once (see bench/inference.py). A failing benchmark stops the
report and leaves the previous BENCHMARKS.md in place. Each script's progress and section times go to the console.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import harness

from hftl.files import write_text_atomic

DEMO_RUN = Path("runs/demo")


def sections() -> list[tuple[str, str, list[str]]]:
    """(name, title, command) for each benchmark, in the order they run."""
    demo = ["--run", f"text={DEMO_RUN}"] if (harness.REPO / DEMO_RUN / "results.json").is_file() else []
    return [
        ("train_throughput", "Training throughput: hftl's loop vs transformers' Trainer", ["bench/train_throughput.py"]),
        ("inference", "Inference: PyTorch eager vs ONNX Runtime fp32, fused and int8", ["bench/inference.py", *demo]),
        ("memory", "Memory: LoRA vs full fine-tuning vs linear probe", ["bench/memory.py"]),
        ("input_pipeline", "Input pipeline: data loading alone vs the training step", ["bench/input_pipeline.py"]),
        ("scaling", "Scaling: training throughput vs batch size and input size", ["bench/scaling.py"]),
    ]


def merge_sections(existing: str, updates: dict[str, str]) -> str:
    """``existing`` report with the ``## title`` sections in ``updates`` replaced (appended when missing)."""
    header, *blocks = existing.split("\n## ")
    order = [block.split("\n", 1)[0] for block in blocks]
    by_title = dict(zip(order, blocks, strict=True))
    for title, text in updates.items():
        if title not in by_title:
            order.append(title)
        by_title[title] = text.removeprefix("## ")
    return "\n## ".join([header.rstrip("\n") + "\n", *(by_title[t].rstrip("\n") + "\n" for t in order)])


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help="comma-separated benchmark names; their sections replace the same "
                   "sections of the existing report (default: all, a new report)")  # fmt: skip
    p.add_argument("--output", type=Path, default=harness.REPO / "BENCHMARKS.md")
    p.add_argument("--quick", action="store_true", help="every benchmark in its smoke mode (checks the plumbing)")
    args = p.parse_args(argv)
    chosen = [(name, title, command + ["--quick"] * args.quick) for name, title, command in sections()]
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {name for name, _, _ in chosen})
        if unknown:
            raise SystemExit(f"--only: unknown benchmark(s) {unknown}; known: {[name for name, _, _ in chosen]}")
        chosen = [s for s in chosen if s[0] in names]
    info = harness.machine()
    updates: dict[str, str] = {}
    started = time.perf_counter()
    for name, title, command in chosen:
        harness.log(f"# {name}: python {shlex.join(command)}")
        now = harness.machine()
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, *command], cwd=harness.REPO, stdout=subprocess.PIPE, text=True, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"bench: {name} failed (exit {proc.returncode}); {args.output} left as it was")
        updates[title] = (
            f"## {title}\n\n`python {shlex.join(command)}` ({seconds / 60:.1f} min, {now['date']}, "
            f"load average before {now['load_average_1min']})\n\n{proc.stdout.strip()}\n"
        )
    if args.only and args.output.is_file():
        report = merge_sections(args.output.read_text(), updates)
    else:
        header = (
            "# Benchmarks\n\n"
            f"Produced by `make bench` on {info['cores']} cores ({info['cpu']}), {info['date']}; torch {info['torch']}; "
            f"{(time.perf_counter() - started) / 60:.1f} min in all. Each section gives the command that produced it and "
            "the load average before it (anything well above 0 means other work shared the cores); "
            "`python bench/report.py --only NAME` reruns one section in place. Numbers per run are in `runs/bench/*.json`.\n"
        )
        report = "\n".join([header, *updates.values()])
    write_text_atomic(args.output, report)
    print(report)


if __name__ == "__main__":
    main(sys.argv[1:])
