"""Which model of an export `hftl predict` and `hftl serve` run by default: the fastest variant (fp32, int8, bf16)
that the export itself measured on this CPU within half an accuracy point of fp32 (issue 16's serving rule), else
fp32, the parity-checked model.

The export times its variants side by side (shuffled blocks, hftl.deploy.latency) and scores each on the run's test
split with the inputs `hftl predict` feeds (the modality's own encode: text padded to ``text.max_length``, which is
what ONNX Runtime's dynamic int8 was gated on). Timings hold for the CPU they were taken on only: on another CPU
model or instruction set the default falls back to fp32 and says why.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hftl.deploy.backends import BACKENDS
from hftl.errors import HftlError
from hftl.run import rundir

# Issue 16: "Serving ... at at most 0.5 point accuracy loss".
MAX_ACCURACY_DROP = 0.005
FP32 = "fp32"


@dataclass(frozen=True)
class Choice:
    """The variant to serve and why (one line), with the numbers it was decided on."""

    variant: str
    reason: str
    speedup_vs_fp32: dict[str, float] = field(default_factory=dict)
    accuracy_drop: dict[str, float] = field(default_factory=dict)
    max_accuracy_drop: float = MAX_ACCURACY_DROP

    @property
    def quantized(self) -> bool:
        """Whether the variant is the export's int8 model."""
        return self.variant == "int8"

    @property
    def precision(self) -> str:
        """The precision the (non-int8) model runs in: bf16 (OpenVINO's bf16 hint) or fp32."""
        return "bf16" if self.variant == "bf16" else FP32

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_signature(cpu: dict[str, Any] | None) -> tuple[str, tuple[str, ...]] | None:
    """What must match for timings to carry over: the CPU model and its flags of interest (hftl.run.cpu)."""
    if not cpu:
        return None
    return str(cpu.get("model")), tuple(sorted(cpu.get("flags") or ()))


def this_cpu() -> dict[str, Any]:
    """This machine's CPU model and flags of interest, as the export report records them (without importing torch)."""
    from hftl.run import cpu

    flags = cpu.cpu_flags()
    return {"model": cpu.cpu_model(), "flags": [f for f in cpu.FLAGS_OF_INTEREST if f in flags]}


def _where(cpu: dict[str, Any]) -> str:
    return f"{cpu.get('model')} ({' '.join(cpu.get('flags') or ()) or 'no flags of interest'})"


def choose(report: dict[str, Any], backend: str, *, cpu_now: dict[str, Any] | None) -> Choice:
    """The default variant of an export from its report's measurements (``latency_ms``, ``accuracy``, ``cpu``).

    A variant qualifies when it was timed at every measured batch size and scored on the test split at most
    ``MAX_ACCURACY_DROP`` below fp32; the qualifying one with the largest speed-up over fp32 (geometric mean over the
    batch sizes, so batch 1 (serving) and batch 32 (`hftl predict`) count alike) wins. fp32 when nothing was timed,
    the report names no CPU, or ``cpu_now`` differs from the recorded CPU.
    """
    keys = {variant: key for variant, key in BACKENDS[backend].variants.items() if key}
    latency = report.get("latency_ms") or {}
    recorded = report.get("cpu")
    if not latency or not all(row.get(keys[FP32]) for row in latency.values()):
        return Choice(FP32, "the export timed no variants (fp32: the parity-checked model)")
    if cpu_signature(recorded) is None:
        return Choice(FP32, "the export recorded no CPU, so its timings may not apply here (fp32: the parity-checked model)")
    if cpu_now is not None and cpu_signature(cpu_now) != cpu_signature(recorded):
        return Choice(FP32, f"exported and timed on {_where(recorded)}, running on {_where(cpu_now)}: "
                            "its timings do not apply here (fp32: the parity-checked model)")  # fmt: skip
    accuracy = report.get("accuracy") or {}
    speedup, drop = {}, {}
    for variant, key in keys.items():
        times = [(row.get(keys[FP32]), row.get(key)) for row in latency.values()]
        acc, base = accuracy.get(key), accuracy.get(keys[FP32])
        if variant == FP32 or any(t is None or not t > 0 for _, t in times) or acc is None or base is None:
            continue
        speedup[variant] = math.exp(sum(math.log(f / t) for f, t in times) / len(times))
        drop[variant] = base - acc
    within = {v: s for v, s in speedup.items() if drop[v] <= MAX_ACCURACY_DROP + 1e-12 and s > 1.0}
    rounded = {"speedup_vs_fp32": {v: round(s, 3) for v, s in speedup.items()},
               "accuracy_drop": {v: round(d, 6) for v, d in drop.items()}}  # fmt: skip
    where = f"timed at export on {_where(recorded)}"

    def measured(v: str) -> str:
        ms = ", ".join(f"{batch} {row[keys[v]]:.2f} vs {row[keys[FP32]]:.2f} ms" for batch, row in latency.items())
        return f"{v} {speedup[v]:.2f}x fp32 ({ms}), accuracy {100 * -drop[v] + 0.0:+.2f} pt"

    if not within:
        tried = "; ".join(measured(v) for v in sorted(speedup, key=speedup.get, reverse=True)) or "fp32 is its only variant"
        return Choice(FP32, f"no variant is faster than fp32 within {100 * MAX_ACCURACY_DROP:g} accuracy point "
                            f"({tried}; {where})", **rounded)  # fmt: skip
    best = max(within, key=within.get)
    others = "".join(f"; {measured(v)}" for v in sorted(speedup, key=speedup.get, reverse=True) if v != best)
    reason = f"fastest within {100 * MAX_ACCURACY_DROP:g} accuracy point of fp32: {measured(best)}{others}; {where}"
    return Choice(best, reason, **rounded)


def resolve(export_dir: Path, backend: str, *, quantized: bool = False, precision: str = "measured") -> Choice:
    """The variant to run from ``export_dir`` on ``backend`` (a row of hftl.deploy.backends.BACKENDS): an explicit
    choice (``quantized``: int8; ``precision`` fp32/no: fp32; bf16/auto: bf16, auto where the CPU has bf16
    instructions), else (``precision="measured"``) the default :func:`choose` derives from the export's report on
    this CPU; a run's PyTorch model (``torch``: no export measured it) runs fp32 then.

    Raises:
        HftlError: a variant ``backend`` does not run (bf16 of ONNX Runtime, int8 of PyTorch); the message names the
            flags that run it.
    """
    spec = BACKENDS[backend]
    if quantized:
        if "int8" not in spec.variants:
            raise HftlError(f"--quantized: {_named(backend)} has no int8 model; {_who_runs('int8')}")
        return Choice("int8", "asked for (--quantized)")
    if precision in ("no", FP32):
        return Choice(FP32, "asked for (--precision fp32)")
    if precision in ("bf16", "auto"):
        if "bf16" not in spec.variants:
            raise HftlError(f"--precision {precision}: {_named(backend)} has no bf16 path on CPU; {_who_runs('bf16')}")
        from hftl.run.precision import resolve as resolve_precision

        chosen = "bf16" if resolve_precision(precision, "cpu") == "bf16" else FP32
        return Choice(chosen, f"asked for (--precision {precision})")
    if precision != "measured":
        raise HftlError(f"--precision {precision!r}: choose measured, fp32, bf16 or auto")
    if not spec.exported:
        return Choice(FP32, "the run's PyTorch model, fp32 unless --precision bf16|auto asks "
                            "(no export measured a default: `hftl export RUN_DIR` writes one)")  # fmt: skip
    report_path = Path(export_dir) / rundir.EXPORT_REPORT
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Choice(FP32, f"{report_path} is missing or unreadable (fp32: the parity-checked model)")
    return choose(report, backend, cpu_now=this_cpu())


def _named(backend: str) -> str:
    return f"{backend} (the run's PyTorch model)" if not BACKENDS[backend].exported else backend


def _who_runs(variant: str) -> str:
    """The --backend choices that run ``variant``, each with where its model comes from."""
    names = [name for name, spec in BACKENDS.items() if variant in spec.variants]
    return "it runs with " + "; ".join(f"--backend {name} ({BACKENDS[name].where})" for name in names)
