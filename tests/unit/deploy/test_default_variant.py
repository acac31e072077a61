"""The serving default follows the export's own measurement: the fastest variant within 0.5 point of fp32, timed on
this CPU; fp32 otherwise (another CPU, nothing timed, every faster variant too inaccurate)."""

from __future__ import annotations

import json

import pytest

from hftl.deploy.default_variant import MAX_ACCURACY_DROP, choose, resolve, this_cpu
from hftl.errors import HftlError

CPU = {"model": "AMD EPYC 9R14", "flags": ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]}


def onnx_report(int8_ms: tuple[float, float], int8_acc: float, *, fp32_acc: float = 0.9753, cpu=CPU) -> dict:
    return {
        "accuracy": {"torch": fp32_acc, "onnx_fp32": fp32_acc, "onnx_int8": int8_acc, "max_int8_drop": 0.01},
        "latency_ms": {"batch_1": {"torch": 19.0, "onnx_fp32": 8.8, "onnx_int8": int8_ms[0]},
                       "batch_32": {"torch": 539.0, "onnx_fp32": 297.0, "onnx_int8": int8_ms[1]}},  # fmt: skip
        "cpu": cpu,
    }


def test_int8_within_half_a_point_and_faster_is_the_default():
    choice = choose(onnx_report((4.3, 150.0), 0.9753 - 0.004), "onnxruntime", cpu_now=CPU)
    assert choice.variant == "int8"
    assert choice.speedup_vs_fp32["int8"] == pytest.approx(((8.8 / 4.3) * (297.0 / 150.0)) ** 0.5, abs=1e-3)
    assert choice.accuracy_drop["int8"] == pytest.approx(0.004)
    assert "int8 2.01x fp32 (batch_1 4.30 vs 8.80 ms, batch_32 150.00 vs 297.00 ms), accuracy -0.40 pt" in choice.reason
    assert "AMD EPYC 9R14" in choice.reason


def test_int8_losing_more_than_half_a_point_leaves_fp32_however_fast():
    choice = choose(onnx_report((1.0, 10.0), 0.9753 - MAX_ACCURACY_DROP - 0.001), "onnxruntime", cpu_now=CPU)
    assert choice.variant == "fp32"
    assert "no variant is faster than fp32 within 0.5 accuracy point" in choice.reason and "accuracy -0.60 pt" in choice.reason


def test_int8_slower_than_fp32_leaves_fp32():
    assert choose(onnx_report((9.5, 320.0), 0.9753), "onnxruntime", cpu_now=CPU).variant == "fp32"


def test_timings_from_another_cpu_fall_back_to_fp32_with_the_reason():
    xeon = {"model": "Intel(R) Xeon(R) Platinum 8481C", "flags": ["avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"]}
    choice = choose(onnx_report((4.3, 150.0), 0.9753), "onnxruntime", cpu_now=xeon)
    assert choice.variant == "fp32"
    assert "exported and timed on AMD EPYC 9R14" in choice.reason and "running on Intel(R) Xeon(R)" in choice.reason
    same_model_other_flags = {**CPU, "flags": ["avx2"]}  # e.g. a VM that hides AVX-512
    assert choose(onnx_report((4.3, 150.0), 0.9753), "onnxruntime", cpu_now=same_model_other_flags).variant == "fp32"


def test_reports_without_timings_or_cpu_serve_fp32():
    untimed = {**onnx_report((4.3, 150.0), 0.9753), "latency_ms": None}
    assert choose(untimed, "onnxruntime", cpu_now=CPU).variant == "fp32"
    older = {k: v for k, v in onnx_report((4.3, 150.0), 0.9753).items() if k != "cpu"}  # written before issue 16
    choice = choose(older, "onnxruntime", cpu_now=CPU)
    assert choice.variant == "fp32" and "recorded no CPU" in choice.reason


def test_openvino_picks_among_fp32_bf16_and_int8():
    report = {
        "accuracy": {"torch": 0.9753, "openvino_fp32": 0.9753, "openvino_bf16": 0.9753, "openvino_int8": 0.9685},
        "latency_ms": {"batch_1": {"openvino_fp32": 8.4, "openvino_bf16": 5.2, "openvino_int8": 3.5},
                       "batch_32": {"openvino_fp32": 244.0, "openvino_bf16": 127.0, "openvino_int8": 90.0}},  # fmt: skip
        "cpu": CPU,
    }
    choice = choose(report, "openvino", cpu_now=CPU)  # int8 is faster but 0.68 point off: bf16 (the ladder's case)
    assert choice.variant == "bf16" and set(choice.speedup_vs_fp32) == {"bf16", "int8"}
    report["accuracy"]["openvino_int8"] = 0.9731
    assert choose(report, "openvino", cpu_now=CPU).variant == "int8"


def test_resolve_takes_explicit_flags_first_and_reads_the_report(tmp_path):
    (tmp_path / "export_report.json").write_text(json.dumps(onnx_report((4.3, 150.0), 0.9753, cpu=this_cpu())))
    assert resolve(tmp_path, "onnxruntime").variant == "int8"
    assert resolve(tmp_path, "onnxruntime", precision="fp32").variant == "fp32"
    assert resolve(tmp_path, "onnxruntime", precision="no").variant == "fp32"
    assert resolve(tmp_path, "onnxruntime", quantized=True).reason == "asked for (--quantized)"
    with pytest.raises(HftlError, match="onnxruntime has no bf16 path"):
        resolve(tmp_path, "onnxruntime", precision="bf16")
    assert resolve(tmp_path / "missing", "onnxruntime").variant == "fp32"
