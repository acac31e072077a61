"""training.mixed_precision: check what was asked against the device, and resolve ``auto``.

accelerate runs bf16 autocast on CPU as well as on GPUs (it wraps the prepared model's forward in
``torch.autocast``), so bf16 is a CPU option wherever the CPU computes bf16 in hardware. Where it does not, oneDNN
emulates bf16 with fp32 instructions plus conversions: slower than fp32 and less accurate, so hftl refuses it.

``auto`` picks, per device (README "Precision and backend defaults" has the measurements, bench/precision.py):
    CUDA                 bf16 where the GPU supports it, else fp16
    CPU with bf16        bf16: AMX (Xeon: 1.2x a MiniLM training step, 2.9x batch-32 inference) or AVX512-BF16
                         (AMD EPYC: LoRA MiniLM training 1.5x and more, see BENCHMARKS.md)
    other CPUs           no (fp32): bf16 would be emulated
"""

from __future__ import annotations

import logging

import torch

from hftl.errors import ConfigError
from hftl.run import cpu

logger = logging.getLogger("hftl")

AUTO = "auto"


def _cuda_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve(setting: str, device_type: str) -> str:
    """The precision accelerate gets ("no", "fp16", "bf16") for ``setting`` on a device of ``device_type``.

    Raises:
        ConfigError: the device cannot run what was asked (the message names what is missing and what to set).
    """
    if setting == AUTO:
        chosen = auto_choice(device_type)
        logger.info("training.mixed_precision=auto -> %s on %s", chosen, describe_device(device_type))
        return chosen
    if device_type != "cpu" or setting == "no":
        return setting
    if setting == "fp16":
        raise ConfigError(
            "training.mixed_precision=fp16 needs a GPU (accelerate has no fp16 autocast on CPU); "
            "this machine has none. Use bf16 (on a CPU with bf16 instructions), no, or auto"
        )
    if not cpu.native_bf16():
        raise ConfigError(
            f"training.mixed_precision=bf16: this CPU ({cpu.cpu_model()}) has no bf16 instructions "
            "(neither amx_bf16 nor avx512_bf16 in /proc/cpuinfo flags); torch would emulate bf16, slower than fp32. "
            "Set training.mixed_precision=no (or auto, which picks what this device supports)"
        )
    return setting


def auto_choice(device_type: str) -> str:
    if device_type == "cuda":
        return "bf16" if _cuda_bf16() else "fp16"
    if device_type == "cpu":
        return "bf16" if cpu.native_bf16() else "no"
    return "no"


def describe_device(device_type: str) -> str:
    if device_type == "cuda":
        return torch.cuda.get_device_name()
    if device_type == "cpu":
        flags = cpu.describe()["flags"]
        return f"{cpu.cpu_model()} ({', '.join(f for f in flags if 'bf16' in f or 'amx' in f) or 'no bf16/AMX flags'})"
    return device_type


def autocast(precision: str, device_type: str = "cpu"):
    """The autocast context for inference in ``precision`` ("no"/"fp32", "bf16", "fp16"); checked like training's."""
    import contextlib

    if precision in ("no", "fp32"):
        return contextlib.nullcontext()
    resolved = resolve(precision, device_type)
    if resolved == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16 if resolved == "bf16" else torch.float16)
