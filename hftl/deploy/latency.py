"""Fair CPU latency comparison of PyTorch eager, ORT fp32 and ORT int8 at one thread count.

Timing trap (STACK.md): onnxruntime worker threads keep spinning after a call and slow whatever runs next, so
alternating backends call by call makes PyTorch look ~3x slower than it is. Here each backend is timed in a block
of consecutive calls, the first calls of every block are discarded, block order is shuffled across rounds, and
the median is reported. Within that scheme ORT keeps thread spinning on, its default and how a serving process
runs it: PyTorch's OpenMP threads spin-wait too, so turning ORT's off would handicap ORT alone (at batch 1 on
2 cores, int8 MiniLM: 9.2 ms without spinning, 7.8 ms with; PyTorch 23.2 ms either way; see BENCHMARKS.md).
"""

from __future__ import annotations

import gc
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from hftl.deploy.parity import load_torch_model
from hftl.deploy.runtime import FP32_FILE, INT8_FILE, default_num_threads, make_session, session_feed

logger = logging.getLogger(__name__)


def _cpu_seconds() -> tuple[float, float] | None:
    """(all processes' busy CPU seconds from /proc/stat, this process's CPU seconds); None off Linux."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, own.user + own.system  # minus idle and iowait


def other_processes_share(
    before: tuple[float, float] | None, after: tuple[float, float] | None, wall_s: float
) -> float | None:
    """Share of all cores that other processes kept busy between two :func:`_cpu_seconds` readings."""
    if not before or not after:
        return None
    other = (after[0] - before[0]) - (after[1] - before[1])
    return round(max(0.0, other) / (wall_s * (os.cpu_count() or 1)), 3)


def time_blocks(runners: Mapping[str, Callable[[], object]], **how: int) -> dict[str, float]:
    """Median milliseconds per call for each runner, timed in shuffled blocks (``how``: :func:`time_block_samples`)."""
    return {name: float(np.median(ms)) for name, ms in time_block_samples(runners, **how).items()}


def time_block_samples(
    runners: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 2,
    rounds: int = 3,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Milliseconds of every timed call for each runner, timed in shuffled blocks (for a median and its spread).

    Args:
        runners: Name -> zero-argument callable doing one inference call.
        repeats: Timed calls per runner in total, spread over the rounds.
        warmup: Calls discarded at the start of every block (after a backend switch).
        rounds: Blocks per runner; block order is reshuffled each round.
        seed: Seed for the block order, so a run can be repeated.
    """
    repeats = max(1, repeats)
    rounds = max(1, min(rounds, repeats))
    per_block = math.ceil(repeats / rounds)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    # No garbage collection inside the timed calls: a collection would be billed to whichever backend runs.
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            order = list(runners)
            rng.shuffle(order)
            for name in order:
                call = runners[name]
                for _ in range(warmup):
                    call()
                for _ in range(per_block):
                    start = time.perf_counter()
                    call()
                    samples[name].append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: [1000.0 * t for t in s] for name, s in samples.items()}


def _rows(features: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """First ``batch_size`` rows of every feature, cycling the rows when the set is smaller."""
    n = len(next(iter(features.values())))
    idx = np.arange(batch_size) % n
    return {k: np.take(np.asarray(v), idx, axis=0) for k, v in features.items()}


def time_beside_torch(
    model: object,
    runners_at: Callable[[int], tuple[Mapping[str, np.ndarray], Mapping[str, Callable[[], object]]]],
    *,
    num_threads: int,
    batch_sizes: Sequence[int] = (1, 32),
    **how: int,
) -> tuple[dict[str, dict[str, float]], float | None]:
    """Median ms per call of PyTorch eager ``model`` and the runners ``runners_at(bs)``
    returns with the feed PyTorch gets, per batch size, in shuffled blocks (:func:`time_blocks` ``how``) at
    ``num_threads`` torch threads; and the share of the CPU other processes used meanwhile (None where unknown)."""
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    latency: dict[str, dict[str, float]] = {}
    # Other processes on the cores wreck the comparison (torch's OpenMP threads suffer far more than ORT's),
    # so record how busy the machine was with work that was not ours.
    before, start = _cpu_seconds(), time.perf_counter()
    try:
        with torch.inference_mode():
            for bs in batch_sizes:
                feed, others = runners_at(bs)
                tensors = {k: torch.from_numpy(v) for k, v in feed.items()}
                runners: dict[str, Callable[[], object]] = {"torch": lambda t=tensors: model(**t), **others}
                latency[f"batch_{bs}"] = time_blocks(runners, **how)
    finally:
        torch.set_num_threads(previous_threads)
    other_share = other_processes_share(before, _cpu_seconds(), time.perf_counter() - start)
    if other_share is not None and other_share > 0.1:
        logger.warning(
            "other processes used %.0f%% of the CPU while timing: latency numbers are unreliable", 100 * other_share
        )
    return latency, other_share


def speedups(latency: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each backend's speed-up over PyTorch (``torch``) per batch size of a :func:`time_beside_torch` table."""
    return {key: {name: round(ms_by["torch"] / ms, 3) for name, ms in ms_by.items()} for key, ms_by in latency.items()}


def measure_latency(
    model_dir: Path,
    onnx_dir: Path,
    features: Mapping[str, np.ndarray],
    *,
    task: str | None = None,
    auto_class: str | None = None,
    num_threads: int | None = None,
    repeats: int = 20,
    batch_sizes: Sequence[int] = (1, 32),
    warmup: int = 2,
    rounds: int = 3,
    allow_spinning: bool = True,
    seed: int = 0,
) -> dict:
    """Median ms per call for torch eager fp32, ORT fp32 and (if present) ORT int8 at each batch size.

    Args:
        model_dir: The merged transformers model the ONNX graph was exported from.
        onnx_dir: Holds ``model.onnx`` and optionally ``model_quantized.onnx``.
        features: Preprocessed inputs keyed by graph input name; rows are cycled to fill a batch.
        task, auto_class: How to load the PyTorch model (see :func:`hftl.deploy.parity.load_torch_model`).
        num_threads: torch intra-op threads and ORT ``intra_op_num_threads`` (inter-op 1); None = usable cores.
        repeats, warmup, rounds, seed: See :func:`time_blocks`.
        allow_spinning: ORT ``session.intra_op.allow_spinning`` (ORT's default, on; see the module docstring).

    Returns:
        ``{"latency_ms": {"batch_1": {...}}, "speedup_vs_torch": {...}, "num_threads": n, "method": {...}}``.
    """
    n_threads = num_threads or default_num_threads()
    onnx_dir = Path(onnx_dir)
    sessions = {
        "onnx_fp32": make_session(onnx_dir / FP32_FILE, num_threads=n_threads, allow_spinning=allow_spinning)
    }
    if (onnx_dir / INT8_FILE).is_file():
        sessions["onnx_int8"] = make_session(
            onnx_dir / INT8_FILE, num_threads=n_threads, allow_spinning=allow_spinning
        )
    model = load_torch_model(model_dir, task=task, auto_class=auto_class)

    def ort_runners(bs: int) -> tuple[dict[str, np.ndarray], dict[str, Callable[[], object]]]:
        # Same cast inputs for every backend: the graph's declared dtypes.
        feed = session_feed(sessions["onnx_fp32"], _rows(features, bs))
        return feed, {name: (lambda s=sess, f=feed: s.run(None, f)) for name, sess in sessions.items()}

    latency, other_share = time_beside_torch(
        model, ort_runners, num_threads=n_threads, batch_sizes=batch_sizes,
        repeats=repeats, warmup=warmup, rounds=rounds, seed=seed,
    )  # fmt: skip
    speedup = speedups(latency)
    return {
        "latency_ms": {k: {n: round(v, 3) for n, v in d.items()} for k, d in latency.items()},
        "speedup_vs_torch": speedup,
        "num_threads": n_threads,
        "method": {
            "statistic": "median ms per call",
            "repeats": repeats,
            "warmup_per_block": warmup,
            "rounds": max(1, min(rounds, repeats)),
            "block_order": "shuffled per round",
            "ort_allow_spinning": allow_spinning,
            "ort_inter_op_num_threads": 1,
            "other_processes_cpu_share": other_share,
        },
    }
