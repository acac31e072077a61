"""`hftl export`'s summary: one printer for ONNX and OpenVINO reports, with the latency and the serving default."""

from __future__ import annotations

from hftl.deploy.export_report import print_report

CPU = {"model": "AMD EPYC 9R14", "flags": ["avx512_vnni", "avx512_bf16"]}
DEFAULT = {"variant": "int8", "reason": "fastest within 0.5 accuracy point of fp32"}


def test_onnx_report_prints_gates_accuracy_latency_and_the_default(capsys):
    print_report({
        "task": "text-classification", "num_samples": 445,
        "parity": {"fp32_max_abs_diff": 2e-6, "int8_max_abs_diff": 0.05},
        "accuracy": {"torch": 0.9753, "onnx_fp32": 0.9753, "onnx_int8": 0.9731, "max_int8_drop": 0.01},
        "latency_ms": {"batch_1": {"torch": 19.0, "onnx_fp32": 8.8, "onnx_int8": None}}, "default": DEFAULT,
    })  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ONNX export (text-classification, 445 test samples)"
    assert "accuracy torch 0.9753  onnx_fp32 0.9753  onnx_int8 0.9731" in out[2] and "max_int8_drop" not in out[2]
    assert out[3] == "  latency batch_1: torch 19.00 ms  onnx_fp32 8.80 ms"  # an untimed variant is left out
    assert out[4] == "  default  int8: fastest within 0.5 accuracy point of fp32"


def test_openvino_report_adds_the_int8_kernels_and_the_cpu(capsys):
    print_report({
        "backend": "openvino", "task": "text-classification", "num_samples": 20,
        "parity": {"fp32_max_abs_diff": 3e-5}, "accuracy": {"torch": 0.9, "openvino_int8": 0.85},
        "int8_kernels": {"brgemm_avx512_I8": 36}, "cpu": CPU, "latency_ms": None, "default": None,
    })  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "OpenVINO export (text-classification, 20 test samples)"
    assert out[-1] == "  int8 kernels {'brgemm_avx512_I8': 36}  (CPU AMD EPYC 9R14: avx512_vnni avx512_bf16)"
