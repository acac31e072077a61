"""Latency per second of audio: PyTorch vs ORT fp32 vs ORT int8 transcribing the same clips, in one process.

One timed call transcribes a fixed set of clips (features, greedy decoding, detokenising: what a user waits for),
either clip by clip (``batch_1``) or all in one batch (``batch_all``); its time over the clips' total audio length is
the milliseconds per second of audio (x 1000 = the real-time factor). Conventions of hftl.deploy.latency: each
backend runs in blocks of consecutive calls, the first calls of a block are discarded, the block order is shuffled
per round, the median is reported, and the share of the CPU that other processes used meanwhile is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hftl.deploy.latency import _cpu_seconds, other_processes_share, time_blocks
from hftl.deploy.runtime import default_num_threads
from hftl.deploy.speech_runtime import Clip, SpeechRecognizer

LATENCY_CLIPS = 4  # clips per timed call: enough to average over lengths, few enough to repeat on 2 cores


def measure_speech_latency(
    recognizers: Mapping[str, SpeechRecognizer],
    clips: Sequence[Clip],
    *,
    num_threads: int | None = None,
    repeats: int = 3,
    warmup: int = 1,
    rounds: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Median ms per second of audio for each backend, clip by clip and batched.

    Args:
        recognizers: ``torch``, ``onnx_fp32`` (and ``onnx_int8``), the ORT ones opened with ``num_threads``.
        clips: The first :data:`LATENCY_CLIPS` are timed.
        num_threads: torch intra-op threads for the measurement (ORT's are fixed when its sessions open).
        repeats, warmup, rounds, seed: See :func:`hftl.deploy.latency.time_blocks`.

    Returns:
        ``ms_per_audio_second`` and ``speedup_vs_torch`` per mode and backend, ``clips``, ``audio_seconds``,
        ``num_threads`` and ``method``.
    """
    import torch

    from hftl.run import cpu

    timed = list(clips[:LATENCY_CLIPS])
    audio_s = sum(c.seconds for c in timed)
    waves = [c.wave for c in timed]
    n_threads = num_threads or default_num_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    modes: dict[str, Callable[[SpeechRecognizer], Callable[[], object]]] = {
        "batch_1": lambda rec: lambda: [rec.transcribe([w], batch_size=1) for w in waves],
        "batch_all": lambda rec: lambda: rec.transcribe(waves, batch_size=len(waves)),
    }
    ms_per_second: dict[str, dict[str, float]] = {}
    before, start = _cpu_seconds(), time.perf_counter()
    try:
        for mode, runner in modes.items():
            per_call = time_blocks(
                {name: runner(rec) for name, rec in recognizers.items()},
                repeats=repeats, warmup=warmup, rounds=rounds, seed=seed,
            )  # fmt: skip
            ms_per_second[mode] = {name: round(ms / audio_s, 3) for name, ms in per_call.items()}
    finally:
        torch.set_num_threads(previous)
    other_share = other_processes_share(before, _cpu_seconds(), time.perf_counter() - start)
    return {
        "ms_per_audio_second": ms_per_second,
        "speedup_vs_torch": {
            mode: {name: round(row["torch"] / ms, 3) for name, ms in row.items()} for mode, row in ms_per_second.items()
        },
        "clips": len(timed),
        "audio_seconds": round(audio_s, 3),
        "num_threads": n_threads,
        "cpu": cpu.describe(),
        "method": {
            "statistic": "median ms per timed call / seconds of audio in it",
            "batch_1": "clips transcribed one by one", "batch_all": "all clips in one generate call",
            "decoding": "greedy", "repeats": repeats, "warmup_per_block": warmup, "rounds": max(1, min(rounds, repeats)),
            "block_order": "shuffled per round", "other_processes_cpu_share": other_share,
        },
    }  # fmt: skip
