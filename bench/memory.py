"""Memory: peak resident memory of LoRA vs full fine-tuning vs linear probe, per modality, and what each trains.

    python bench/memory.py [--steps 5] [--modalities text,vision,audio] [--quick]

Each (modality, method) runs in its own process (peak RSS is per process and never goes down): the modality's
recipe with ``method.name`` set, built as ``hftl train`` builds it, then ``--steps`` optimizer steps of hftl's loop
(the optimizer state exists after the first). Reported: resident memory after imports, after building the model and
data, and the peak while training (``ru_maxrss``), with the trainable and total parameter counts.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness

METHODS = ["lora", "full", "linear_probe"]


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * resource.getpagesize() / 2**20


def child(config: str, method: str, steps: int) -> dict[str, Any]:
    """Runs inside the measured process; returns its numbers."""
    after_imports = _rss_mb()
    cfg = harness.load(config, f"method.name={method}")
    built = harness.build(cfg)
    after_build = _rss_mb()
    harness.hftl_loop(built, steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "rss_after_imports_mb": round(after_imports, 1),
        "rss_after_build_mb": round(after_build, 1),
        "peak_rss_mb": round(peak, 1),
        "params": built.params,
    }


def measure(config: str, method: str, steps: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", config, method, str(steps), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        _, config, method, steps, *rest = argv
        harness.setup(harness.parser("child"), rest)
        print(json.dumps(child(config, method, int(steps))))
        return
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="optimizer steps per process")
    args = harness.setup(p, argv)
    if args.quick:
        args.steps = 2
    times: dict[str, float] = {}
    results = []
    for modality, config in harness.recipe_configs(args).items():
        with harness.section(f"memory {modality}", times):
            for method in METHODS:
                r = {"modality": modality, "config": config, "method": method, "steps": args.steps}
                r.update(measure(config, method, args.steps, args.threads))
                harness.log(f"  {modality} {method}: peak {r['peak_rss_mb']:.0f} MiB")
                results.append(r)
    rows = [
        [
            r["modality"], r["method"], f"{r['params']['trainable']:,}",
            f"{100 * r['params']['trainable'] / r['params']['total']:.2f}%",
            r["rss_after_build_mb"], r["peak_rss_mb"], round(r["peak_rss_mb"] - r["rss_after_build_mb"], 1),
        ]
        for r in results
    ]  # fmt: skip
    print(f"resident memory in MiB, one process per row, {args.steps} training steps, "
          f"{args.threads} threads, the recipe's batch size\n")  # fmt: skip
    print(harness.markdown_table(
        ["modality", "method", "trainable params", "of total", "after build", "peak in training",
         "training adds"],
        rows,
    ))  # fmt: skip
    harness.write_results(args.out, "memory", {"quick": args.quick, "section_seconds": times, "results": results})


if __name__ == "__main__":
    main(sys.argv[1:])
