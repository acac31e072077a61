"""ONNX export gate, int8 quantization, report and onnxruntime classifier, on a tiny random BERT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hftl.config import ExportConfig
from hftl.deploy import onnx as hftl_onnx
from hftl.deploy import parity
from hftl.deploy.latency import time_blocks
from hftl.deploy.onnx import ExportError, choose_quantization_config, evaluate_backends, export_and_check
from hftl.deploy.runtime import OnnxClassifier
from tests.helpers.tiny_models import tiny_text_model

SENTENCES = [
    "the movie was very good",
    "an awful plot and a bad actor",
    "the team will win the game",
    "money and market news",
    "this song is not happy",
    "a great new film",
    "slow old music",
    "love the sport",
] * 3
REPORT_KEYS = {
    "task",
    "opset",
    "versions",
    "num_samples",
    "parity",
    "accuracy",
    "latency_ms",
    "speedup_vs_torch",
    "num_threads",
    "quantization",
    "sizes_mb",
    "cpu",
    "default",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model_dir, features, labels) for a tiny BERT; labels are torch's predictions, so accuracy is 1.0."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = tiny_text_model(tmp_path_factory.mktemp("tiny") / "model")
    tok = AutoTokenizer.from_pretrained(model_dir)
    enc = tok(SENTENCES, padding="max_length", truncation=True, max_length=16, return_tensors="np")
    features = {k: v.astype(np.int64) for k, v in enc.items()}
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        labels = model(**{k: torch.from_numpy(v) for k, v in features.items()}).logits.argmax(-1).numpy()
    return model_dir, features, labels


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    """One successful export shared by the read-only tests (export + int8 + timing take a few seconds)."""
    model_dir, features, labels = tiny
    out = tmp_path_factory.mktemp("export") / "onnx"
    report = export_and_check(
        model_dir, out, "text-classification", features, labels, ExportConfig(num_threads=1, latency_repeats=2)
    )
    return out, report


def test_export_writes_models_and_full_report(exported):
    out, report = exported
    for name in ("model.onnx", "model_quantized.onnx", "export_report.json", "config.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "export_report.json").read_text())
    assert on_disk == report
    assert set(report) >= REPORT_KEYS
    assert report["task"] == "text-classification" and isinstance(report["opset"], int)
    assert {"onnxruntime", "optimum", "torch"} <= set(report["versions"])
    assert report["num_samples"] == len(SENTENCES)
    assert {"fp32_max_abs_diff", "int8_max_abs_diff", "int8_agreement", "atol"} <= set(report["parity"])
    assert {"torch", "onnx_fp32", "onnx_int8"} <= set(report["accuracy"])
    for batch in ("batch_1", "batch_32"):
        assert set(report["latency_ms"][batch]) == {"torch", "onnx_fp32", "onnx_int8"}
        assert all(ms > 0 for ms in report["latency_ms"][batch].values())
        assert set(report["speedup_vs_torch"][batch]) == {"torch", "onnx_fp32", "onnx_int8"}
    assert report["num_threads"] == 1
    # the serving default, decided on the numbers above and the CPU they were taken on
    assert report["cpu"]["model"] and report["default"]["variant"] in {"fp32", "int8"}
    assert set(report["default"]["speedup_vs_fp32"]) == {"int8"} and report["default"]["max_accuracy_drop"] == 0.005
    assert report["latency_method"]["ort_allow_spinning"] is True
    assert "other_processes_cpu_share" in report["latency_method"]  # a load meter, never asserted on
    assert report["quantization"]["config"] in {"arm64", "avx512_vnni", "avx512", "avx2"}
    assert "MatMul" in report["quantization"]["operators"]
    assert set(report["sizes_mb"]) == {"model.onnx", "model_quantized.onnx", "torch_safetensors"}
    assert all(v > 0 for v in report["sizes_mb"].values())


def test_fp32_parity_and_int8_gate(exported):
    _, report = exported
    assert report["parity"]["fp32_max_abs_diff"] <= 1e-4
    assert report["accuracy"]["torch"] == 1.0
    assert report["accuracy"]["torch"] - report["accuracy"]["onnx_int8"] <= 0.01


def test_no_temp_dirs_or_cwd_litter(tiny, tmp_path, monkeypatch):
    model_dir, features, labels = tiny
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    export_and_check(
        model_dir, tmp_path / "out", "text-classification", features, labels, measure_speed=False
    )
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "out"]


def _existing_export(tmp_path: Path) -> Path:
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "model.onnx").write_text("previous good export")
    return out


def _assert_untouched(out: Path) -> None:
    assert [p.name for p in out.iterdir()] == ["model.onnx"]
    assert (out / "model.onnx").read_text() == "previous good export"
    assert sorted(p.name for p in out.parent.iterdir()) == ["onnx"]  # no temp/backup dir left behind


def test_parity_failure_keeps_previous_export(tiny, tmp_path):
    model_dir, features, labels = tiny
    out = _existing_export(tmp_path)
    with pytest.raises(ExportError, match="fp32 max abs logit diff") as info:
        export_and_check(
            model_dir, out, "text-classification", features, labels, ExportConfig(parity_atol=0.0, quantize=False)
        )
    diff = info.value.report["parity"]["fp32_max_abs_diff"]
    assert 0 < diff < 1e-3  # a real (tiny) fp32 difference, refused only because the tolerance is 0
    assert f"fp32 max abs logit diff {diff:.3g} > atol 0" in str(info.value)
    _assert_untouched(out)


def test_nan_logits_fail_the_gate(tiny, tmp_path, monkeypatch):
    model_dir, features, labels = tiny
    out = _existing_export(tmp_path)
    real = parity.run_logits

    def nan_logits(session, feats, **kw):
        logits = real(session, feats, **kw)
        logits[0, 0] = np.nan
        return logits

    monkeypatch.setattr(parity, "run_logits", nan_logits)
    with pytest.raises(ExportError, match="non-finite logits from onnx_fp32"):
        export_and_check(model_dir, out, "text-classification", features, labels, ExportConfig(quantize=False))
    _assert_untouched(out)


def test_int8_accuracy_drop_fails(tiny, tmp_path, monkeypatch):
    model_dir, features, labels = tiny
    real = hftl_onnx.evaluate_backends

    def worse_int8(*args, **kwargs):
        ev = real(*args, **kwargs)
        ev["accuracy"]["onnx_int8"] = ev["accuracy"]["torch"] - 0.05
        return ev

    monkeypatch.setattr(hftl_onnx, "evaluate_backends", worse_int8)
    with pytest.raises(ExportError, match="int8 accuracy"):
        export_and_check(
            model_dir, tmp_path / "onnx", "text-classification", features, labels, measure_speed=False
        )
    assert list(tmp_path.iterdir()) == []


def test_success_replaces_previous_export(tiny, tmp_path):
    model_dir, features, labels = tiny
    out = _existing_export(tmp_path)
    export_and_check(
        model_dir, out, "text-classification", features, labels, ExportConfig(quantize=False), measure_speed=False
    )
    assert (out / "model.onnx").stat().st_size > 1000
    assert not (out / "model_quantized.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]


def test_evaluate_backends_ignores_extra_features_and_casts(exported, tiny):
    out, _ = exported
    model_dir, features, labels = tiny
    feats = {k: v.astype(np.int32) for k, v in features.items()} | {"unused": np.zeros(len(labels))}
    ev = evaluate_backends(model_dir, out, feats, labels, batch_size=5)
    assert ev["logits"]["torch"].shape == ev["logits"]["onnx_int8"].shape == (len(labels), 3)
    assert ev["parity"]["fp32_max_abs_diff"] <= 1e-4
    assert ev["nonfinite"] == {"torch": False, "onnx_fp32": False, "onnx_int8": False}


def test_onnx_classifier_labels_and_scores(exported, tiny):
    out, _ = exported
    _, features, labels = tiny
    for quantized in (False, True):
        clf = OnnxClassifier(out, quantized=quantized, num_threads=1)
        assert clf.input_names == ["input_ids", "attention_mask", "token_type_ids"]
        assert clf.id2label == {0: "label_0", 1: "label_1", 2: "label_2"}
        assert clf.logits(features, batch_size=7).shape == (len(labels), 3)
        # Same batching for both calls: dynamic int8 scales activations per batch, so logits depend on it.
        logits = clf.logits(features)
        results = clf.classify(features)
        assert [lbl for lbl, _ in results] == [f"label_{i}" for i in logits.argmax(-1)]
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        expected = (exp / exp.sum(-1, keepdims=True)).max(-1)
        np.testing.assert_allclose([s for _, s in results], expected, rtol=1e-5)
        assert all(1 / 3 <= s <= 1 for _, s in results)


def test_onnx_classifier_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        OnnxClassifier(tmp_path)
    (tmp_path / "model_quantized.onnx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "config.json")):
        OnnxClassifier(tmp_path, quantized=True)


def test_export_refuses_peft_adapter_and_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        hftl_onnx.export_onnx(tmp_path, tmp_path / "out", "text-classification")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ExportError, match="merge"):
        hftl_onnx.export_onnx(tmp_path, tmp_path / "out", "text-classification")


def test_int8_quantizes_weight_matmuls_per_channel_and_keeps_attention_matmuls_fp32(exported):
    import onnx

    out, report = exported
    quant = report["quantization"]
    assert quant["operators"] == ["MatMul"] and quant["per_channel"] is True and quant["weights_only"] is True
    # tiny BERT: 2 layers x (query.key scores, scores.value) multiply two activations
    assert quant["activation_matmuls_in_fp32"] == 4
    assert len(hftl_onnx.activation_matmuls(out / "model.onnx")) == 4
    ops = [n.op_type for n in onnx.load(str(out / "model_quantized.onnx")).graph.node]
    assert ops.count("MatMul") == 4  # left in fp32
    assert ops.count("MatMulInteger") == 2 * 6 + 2  # q, k, v, attention out, 2 feed-forward per layer; pooler, head
    assert "Gather" in ops and "DequantizeLinear" not in ops  # embeddings stay fp32


def test_choose_quantization_config():
    name, config = choose_quantization_config()
    assert name in {"arm64", "avx512_vnni", "avx512", "avx2"}
    assert config.is_static is False and config.per_channel is True
    assert hftl_onnx._quantization_isa("aarch64", set()) == "arm64"
    assert hftl_onnx._quantization_isa("x86_64", {"avx512f", "avx512_vnni"}) == "avx512_vnni"
    assert hftl_onnx._quantization_isa("x86_64", {"avx512f"}) == "avx512"
    assert hftl_onnx._quantization_isa("x86_64", {"avx2"}) == "avx2"
    _, matmul_only = choose_quantization_config(operators=["MatMul"])
    assert list(matmul_only.operators_to_quantize) == ["MatMul"]


def test_time_blocks_runs_each_backend_in_blocks():
    calls: list[str] = []
    runners = {name: (lambda n=name: calls.append(n)) for name in ("a", "b", "c")}
    medians = time_blocks(runners, repeats=4, warmup=1, rounds=2)
    assert set(medians) == {"a", "b", "c"}
    # 2 rounds x (1 warmup + 2 timed) per backend, each block consecutive.
    assert len(calls) == 18
    blocks = [calls[i : i + 3] for i in range(0, 18, 3)]
    assert all(len(set(b)) == 1 for b in blocks)


def test_served_onnx_sessions_do_not_spin_unless_asked(exported):
    from hftl.deploy.backends import load_backend
    from hftl.serve.settings import ServeSettings

    out, _ = exported
    assert ServeSettings(str(out)).spin is False  # `hftl serve` without --spin
    for spin, entry in ((False, "0"), (True, "1")):
        backend = load_backend("onnxruntime", out, quantized=False, num_threads=2, spin=spin)
        assert backend.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == entry
