"""What every benchmark script shares: arguments, building a recipe's model and data, the timed loops, tables, JSON.

Each script benchmarks the three modalities' LoRA recipes by default (``--modalities``, ``--config MODALITY=PATH``
to change them), prints a markdown table on stdout (progress and section times go to stderr) and writes its numbers
to ``runs/bench/NAME.json``. ``--quick`` shrinks every setting to a smoke run: its numbers are not measurements.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Subset

from hftl.config import Config, load_config
from hftl.files import write_json_atomic
from hftl.modalities import get_modality
from hftl.recipe import make_accelerator
from hftl.run.data import load_splits
from hftl.run.hooks import Hook, TrainerState
from hftl.run.methods import apply_method
from hftl.run.models import build_model, count_parameters, load_processor
from hftl.run.training import Trainer

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {
    "text": "recipes/configs/text/minilm_lora.yaml",
    "vision": "recipes/configs/vision/dinov2_lora.yaml",
    "audio": "recipes/configs/audio/whisper_lora.yaml",
}
WARMUP_STEPS = 3  # optimizer steps left out of every samples/s: first-call allocations and kernel selection


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny step counts, numbers mean nothing")
    p.add_argument("--modalities", default="text,vision,audio", help="comma-separated subset of text,vision,audio")
    p.add_argument(
        "--config", action="append", default=[], metavar="MODALITY=PATH",
        help="recipe config for a modality (default: its LoRA recipe); repeatable",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="folder for the JSON results (runs/bench, --quick: runs/bench/quick)")
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: usable cores)")
    return p


def setup(p: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse, and fix the thread count for everything that follows (it is reported with every table)."""
    args = p.parse_args(argv)
    if args.out is None:  # a smoke run never overwrites real numbers
        args.out = REPO / "runs" / "bench" / ("quick" if args.quick else "")
    args.threads = args.threads or usable_cores()
    torch.set_num_threads(args.threads)
    return args


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def recipe_configs(args: argparse.Namespace, defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Modality -> config path, in the order asked for (``defaults``: other recipes than the LoRA ones)."""
    chosen = dict(defaults or CONFIGS)
    for item in args.config:
        modality, sep, path = item.partition("=")
        if not sep or modality not in CONFIGS:
            raise SystemExit(f"--config wants MODALITY=PATH with MODALITY one of {sorted(CONFIGS)}, got {item!r}")
        chosen[modality] = path
    wanted = [m.strip() for m in args.modalities.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"--modalities: unknown {unknown}; choose from {sorted(CONFIGS)}")
    return {m: str(repo_path(chosen[m])) for m in wanted}


def repo_path(path: str) -> Path:
    """``path`` as given when it is absolute or exists from here, else relative to the repository (benches run from
    anywhere)."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO / p


def load(path: str, *overrides: str) -> Config:
    """A recipe config with tracking off (benchmarks write no logs)."""
    return load_config(path, ["training.tracking=none", *overrides])


@dataclass
class Built:
    """A recipe's model, processor and prepared splits, built exactly as ``hftl train`` builds them."""

    cfg: Config
    model: torch.nn.Module
    processor: Any
    train: Any  # prepared training split (augmented, if the recipe augments)
    validation: Any  # prepared validation split
    collate: Callable[[list[dict]], dict]
    params: dict[str, int]


def build(cfg: Config) -> Built:
    """Seeded: two builds of one config give identical weights (LoRA and head initialisation draw from torch's RNG)."""
    set_seed(cfg.training.seed)
    modality = get_modality(cfg.modality)
    splits, labels = load_splits(cfg.data)
    built = build_model(cfg, modality, labels)
    processor = load_processor(cfg, modality, built)
    model = apply_method(cfg, modality, built)
    return Built(
        cfg=cfg,
        model=model,
        processor=processor,
        train=modality.prepare(splits["train"], processor, cfg, train=True),
        validation=modality.prepare(splits["validation"], processor, cfg, train=False),
        collate=modality.collator(processor, cfg),
        params=count_parameters(model),
    )


class FixedOrder(torch.utils.data.Sampler):
    """The same shuffled order every time, so two loops (or two runs) see identical batches."""

    def __init__(self, n: int, seed: int):
        self.order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class StepClock:
    """Wall time at the end of each optimizer step; samples/s over the steps after the warm-up."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def tick(self) -> None:
        self.times.append(time.perf_counter())

    def samples_per_second(self, batch_size: int, warmup: int = WARMUP_STEPS) -> float:
        t = self.times[min(warmup, len(self.times) - 2) :]
        return batch_size * (len(t) - 1) / (t[-1] - t[0])


class _StepTimer(Hook):
    """Ticks the clock after every optimizer step."""

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_step(self, state: TrainerState) -> None:
        self.clock.tick()


def hftl_loop(built: Built, steps: int, *, sampler: torch.utils.data.Sampler | None = None) -> StepClock:
    """``steps`` optimizer steps of hftl's loop (the recipe's accelerator and Trainer), without evaluation or checkpoints."""
    cfg = built.cfg
    cfg = replace(cfg, training=replace(cfg.training, max_steps=steps, eval_steps=None, log_every_steps=10))
    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="hftl-bench-") as out:
        accelerator = make_accelerator(cfg, Path(out))
        loader = DataLoader(
            built.train, batch_size=cfg.training.batch_size, shuffle=sampler is None, sampler=sampler,
            collate_fn=built.collate, num_workers=cfg.training.num_workers,
        )  # fmt: skip
        # time training only; the progress bar's stderr line is noise in the bench log
        trainer = Trainer(
            cfg, accelerator, built.model, loader, loader, Path(out),
            hooks=[_StepTimer(clock)], evaluation=False, progress_bar=False,
        )  # fmt: skip
        trainer.fit()
    return clock


def accuracy(model: torch.nn.Module, dataset: Any, collate: Callable, *, limit: int, batch_size: int = 32) -> float:
    """Accuracy on the first ``limit`` rows of a prepared split."""
    rows = Subset(dataset, range(min(limit, len(dataset))))
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in DataLoader(rows, batch_size=batch_size, collate_fn=collate):
            labels = batch.pop("labels")
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
            total += len(labels)
    model.train(was_training)
    return correct / max(total, 1)


def machine() -> dict[str, Any]:
    """Where the numbers come from; the load average says whether the machine was busy with other work."""
    from hftl.run import cpu

    return {
        "cpu_detail": cpu.describe(),
        "cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_line(threads: int) -> str:
    """The CPU model, its flags of interest and the peak the shares of peak are taken of (every table prints it)."""
    from hftl.run import cpu

    info = cpu.describe()
    peaks = ", ".join(
        f"{dtype} {peak_flops(dtype, threads) / 1e12:.2f} TFLOPS" for dtype in ("fp32", "bf16", "int8") if peak_flops(dtype, threads)
    )
    return (
        f"CPU: {info['model']}, {threads} threads, {info['max_mhz']:.0f} MHz; flags: {' '.join(info['flags'])}; "
        f"AMX usable: {info['amx_usable']}; torch capability {info['torch_capability']}. "
        f"Peak at {threads} cores (from flags and clock, hftl/run/cpu.py): {peaks}."
    )


def peak_flops(dtype: str, threads: int) -> float | None:
    from hftl.run import cpu

    per_core = cpu.peak_flops_per_core(dtype)
    return per_core * threads if per_core else None


def peak_share(flops_per_second: float | None, dtype: str, threads: int) -> str:
    """A rate as a percentage of the machine's peak for dtype, e.g. '3.1 %'."""
    peak = peak_flops(dtype, threads)
    return f"{100 * flops_per_second / peak:.1f} %" if peak and flops_per_second else ""


def count_flops(model: torch.nn.Module, batch: dict[str, torch.Tensor], *, backward: bool) -> float:
    """FLOPs of one forward (and backward) pass of model on batch, counted by torch (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = model(**batch)
        if backward:
            out.loss.backward()
    if backward:
        model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(out_dir: Path, name: str, payload: dict[str, Any]) -> Path:
    path = Path(out_dir) / f"{name}.json"
    write_json_atomic(path, {"benchmark": name, "machine": machine(), **payload})
    return path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def section(name: str, times: dict[str, float]) -> Iterator[None]:
    """Time a section; its seconds go to stderr and into ``times`` (reported in the JSON)."""
    start = time.perf_counter()
    log(f"== {name}")
    try:
        yield
    finally:
        times[name] = round(time.perf_counter() - start, 1)
        log(f"== {name}: {times[name]:.1f} s")
