"""What the CPU at hand can do, from /proc/cpuinfo and from torch's own probe (cpuinfo): never assumed.

bf16 and int8 speed on x86 depends on instruction sets that differ between machines of one cloud:
    amx_bf16 / amx_int8   Intel Sapphire Rapids and later: tile matrix units (oneDNN, ORT's MLAS, OpenVINO use them)
    avx512_bf16           Intel Cooper Lake+, AMD Zen 4+: bf16 dot products in AVX-512 registers
    avx512_vnni/avx_vnni  int8 dot products (u8 x s8) in vector registers
A kernel library uses AMX only where the kernel also grants the process the tile state (Linux arch_prctl), which
torch requests in ``torch._C._cpu._init_amx``; so AMX counts as usable only when torch says it is.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import re
from pathlib import Path
from typing import Any

# Flags that matter for the precision and backend choices, in the order reports list them.
FLAGS_OF_INTEREST = (
    "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The ``flags`` (x86) or ``Features`` (arm) line of /proc/cpuinfo; empty where there is none."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def amx_usable() -> bool:
    """AMX tiles present (flags) and granted to this process: torch asks the kernel for the tile state."""
    import torch

    if "amx_tile" not in cpu_flags():
        return False
    init = getattr(torch._C._cpu, "_init_amx", None)
    return bool(init()) if init is not None else True


def native_bf16() -> bool:
    """bf16 arithmetic in hardware: AMX or AVX512-BF16 on x86, the BF16 extension on arm64."""
    flags = cpu_flags()
    if platform.machine().lower() in {"arm64", "aarch64"}:
        return "bf16" in flags
    return "amx_bf16" in flags and amx_usable() or "avx512_bf16" in flags


def int8_isa() -> str:
    """The instruction set int8 GEMM kernels (oneDNN, ORT's MLAS u8s8, OpenVINO) pick on this CPU, best first."""
    flags = cpu_flags()
    if platform.machine().lower() in {"arm64", "aarch64"}:
        return "arm64 i8mm" if "i8mm" in flags else "arm64 dotprod" if "asimddp" in flags else "arm64 neon"
    if "amx_int8" in flags and amx_usable():
        return "amx_int8"
    for name in ("avx512_vnni", "avx_vnni", "avx512bw", "avx2"):
        if name in flags:
            return name
    return "sse"


def describe() -> dict[str, Any]:
    """CPU model, the flags of interest it has, and what torch reports: recorded with every benchmark and export."""
    import torch

    flags = cpu_flags()
    return {
        "model": cpu_model(),
        "machine": platform.machine(),
        "flags": [f for f in FLAGS_OF_INTEREST if f in flags],
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        # oneDNN's "bf16 supported" is true on any AVX-512 CPU: it emulates bf16 where the flags lack it.
        "torch_mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "amx_usable": amx_usable(),
        "native_bf16": native_bf16(),
        "int8_isa": int8_isa(),
        "max_mhz": max_mhz(),
    }


@functools.lru_cache(maxsize=1)
def max_mhz() -> float | None:
    """The core clock: cpufreq's maximum where the kernel exposes it, else /proc/cpuinfo's current MHz."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1000
    with contextlib.suppress(OSError):
        match = re.search(r"cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text())
        if match:
            return float(match.group(1))
    return None


def peak_flops_per_core(dtype: str) -> float | None:
    """Peak multiply-adds x 2 per second of one core for ``dtype`` (fp32, bf16, int8), from the flags and the clock.

    Per cycle: AVX-512 2 FMA ports x 16 fp32 x 2 = 64 FLOP (AMD Zen 4 runs 512-bit ops on 256-bit halves: 32;
    Zen 5, told apart by avx512_vp2intersect, has full-width units: 64);
    AVX512-BF16 doubles fp32; VNNI int8 is 4x fp32; an AMX tile unit does 1024 bf16 / 2048 int8 MACs a cycle.
    A rough bound (one FMA port on some SKUs, turbo vs base clock): a share of it compares machines, not more.
    """
    mhz, flags = max_mhz(), cpu_flags()
    if mhz is None:
        return None
    half_width_avx512 = ("AMD" in cpu_model().upper() or "cmp_legacy" in flags) and "avx512_vp2intersect" not in flags
    if "avx512f" in flags:
        fp32 = 32.0 if half_width_avx512 else 64.0
    elif "avx2" in flags:
        fp32 = 32.0 if "fma" in flags else 16.0
    else:
        return None
    per_cycle = {
        "fp32": fp32,
        "bf16": 2048.0 if amx_usable() else fp32 * 2 if native_bf16() else fp32,
        "int8": 4096.0 if int8_isa() == "amx_int8" else fp32 * 4 if "vnni" in int8_isa() else fp32 * 2,
    }[dtype]
    return per_cycle * mhz * 1e6
