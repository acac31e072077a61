"""`hftl export`'s summary of an export_report.json: gates, accuracy, latency and the serving default it recorded.

One printer for every export kind (ONNX, OpenVINO, speech recognition), so the backend modules only export and
serve; the serving default's decision itself is hftl.deploy.default_variant's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def print_report(report: Mapping[str, Any]) -> None:
    """A short human summary of an export's export_report.json (its ``task`` and ``backend`` say which kind)."""
    if report.get("task") == "automatic-speech-recognition":
        from hftl.deploy.speech_export import print_speech_report

        print_speech_report(report)
    elif report.get("backend") == "openvino":
        _print_openvino(report)
    else:
        _print_onnx(report)


def _print_onnx(report: Mapping[str, Any]) -> None:
    parity = report["parity"]
    print(f"ONNX export ({report['task']}, {report['num_samples']} test samples)")
    print(f"  parity   fp32 max|diff| {parity['fp32_max_abs_diff']:.2e}  int8 max|diff| {parity.get('int8_max_abs_diff')}")
    _print_accuracy(report)
    print_latency_and_default(report)


def _print_openvino(report: Mapping[str, Any]) -> None:
    print(f"OpenVINO export ({report['task']}, {report['num_samples']} test samples)")
    print(f"  parity   fp32 IR (f32 hint) max|diff| {report['parity']['fp32_max_abs_diff']:.2e}")
    _print_accuracy(report)
    print(f"  int8 kernels {report['int8_kernels']}  (CPU {report['cpu']['model']}: {' '.join(report['cpu']['flags'])})")
    print_latency_and_default(report)


def _print_accuracy(report: Mapping[str, Any]) -> None:
    acc = report["accuracy"]
    print("  accuracy " + "  ".join(f"{k} {v:.4f}" for k, v in acc.items() if isinstance(v, float) and k != "max_int8_drop"))


def print_latency_and_default(report: Mapping[str, Any]) -> None:
    """The timing lines and the serving default of an export report (ONNX or OpenVINO)."""
    for batch, row in (report.get("latency_ms") or {}).items():
        print(f"  latency {batch}: " + "  ".join(f"{k} {v:.2f} ms" for k, v in row.items() if v is not None))
    if report.get("default"):
        print(f"  default  {report['default']['variant']}: {report['default']['reason']}")
