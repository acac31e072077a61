"""OpenVINO backend (the hftl[openvino] extra): IR fp32 parity gate, NNCF int8 accuracy gate, kernels, predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino", reason="the OpenVINO backend is the optional extra hftl[openvino] (make test installs it)")
pytest.importorskip("nncf", reason="NNCF int8 is part of hftl[openvino]")

from hftl.deploy.onnx import ExportError  # noqa: E402
from hftl.deploy.openvino import FP32_XML, INT8_XML, REPORT_FILE, OpenVinoClassifier, export_openvino  # noqa: E402

TEXTS = ["the team win the game", "money market news big", "a film plot actor song"] * 12


@pytest.fixture(scope="module")
def features(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    encoded = tokenizer(TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="np")
    return dict(encoded), np.array([0, 1, 2] * 12)


@pytest.fixture(scope="module")
def exported(tiny_bert, features, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov") / "openvino"
    feats, labels = features
    report = export_openvino(tiny_bert, out, "text-classification", feats, labels, calibration=feats)
    return out, report


def test_export_writes_ir_int8_and_a_report_with_the_kernels_that_ran(exported):
    out, report = exported
    assert (out / FP32_XML).is_file() and (out / INT8_XML).is_file() and (out / "config.json").is_file()
    assert json.loads((out / REPORT_FILE).read_text()) == report
    assert report["parity"]["fp32_max_abs_diff"] <= report["parity"]["atol"]
    assert report["accuracy"]["torch"] - report["accuracy"]["openvino_int8"] <= report["accuracy"]["max_int8_drop"]
    # The runtime graph's primitives: int8 kernels say I8/i8 and name an instruction set of this CPU.
    kernels = report["int8_kernels"]
    assert kernels and any("8" in name for name in kernels), kernels
    assert report["cpu"]["model"] and report["versions"]["openvino"]


def test_classifier_matches_torch_predictions(exported, tiny_bert, features):
    from hftl.deploy.torch_backend import TorchClassifier

    out, _ = exported
    feats, _ = features
    ov = OpenVinoClassifier(out).logits(feats, batch_size=8)
    torch_logits = TorchClassifier(tiny_bert).logits(feats)
    assert np.abs(ov - torch_logits).max() < 1e-4
    labels = [label for label, _ in OpenVinoClassifier(out, quantized=True).classify(feats)]
    assert set(labels) <= {"label_0", "label_1", "label_2"}


def test_parity_failure_refuses_and_keeps_the_previous_export(exported, tiny_bert, features, tmp_path):
    out, _ = exported
    feats, labels = features
    target = tmp_path / "openvino"
    target.mkdir()
    (target / "keep.txt").write_text("previous")
    with pytest.raises(ExportError, match="fp32 IR max abs logit diff"):
        export_openvino(tiny_bert, target, "text-classification", feats, labels, parity_atol=-1.0)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".openvino.tmp")]


@pytest.mark.slow
def test_export_run_and_predict_with_every_backend(quick_overrides, tmp_path):
    from hftl.config import load_config
    from hftl.deploy.export import export_run, predict
    from hftl.recipe import run
    from hftl.run import cpu

    run(load_config(None, [*quick_overrides, "training.epochs=1", "training.tracking=none"]))
    run_dir = Path(quick_overrides[-1].split("=", 1)[1])
    report = export_run(run_dir, backend="openvino")
    assert report["backend"] == "openvino" and (run_dir / "openvino" / FP32_XML).is_file()
    texts = ["the team win the game", "money market news"]
    ov = predict(run_dir / "openvino", texts)
    ov_int8 = predict(run_dir / "openvino", texts, quantized=True)
    from hftl.deploy.export import serving_dir

    assert serving_dir(run_dir) == run_dir / "openvino"  # a run folder is served by its fastest export
    assert predict(run_dir, texts) == ov
    pt = _torch_predict(run_dir, texts)
    assert [label for label, _ in ov] == [label for label, _ in pt]
    assert len(ov_int8) == 2
    assert max(abs(a[1] - b[1]) for a, b in zip(ov, pt, strict=True)) < 1e-4
    if cpu.native_bf16():
        import shutil

        shutil.rmtree(run_dir / "openvino")  # no export left: the run's PyTorch model serves, here in bf16
        assert serving_dir(run_dir) == run_dir
        bf16 = predict(run_dir, texts, precision="bf16")
        assert len(bf16) == 2 and all(0.0 < score <= 1.0 for _, score in bf16)


def _torch_predict(run_dir: Path, texts: list[str]) -> list[tuple[str, float]]:
    from hftl.config import load_config
    from hftl.deploy.torch_backend import TorchClassifier
    from hftl.modalities import get_modality

    cfg = load_config(run_dir / "config.yaml")
    modality = get_modality(cfg.modality)
    processor = modality.load_processor(str(run_dir / "model"), cfg)
    return TorchClassifier(run_dir / "model").classify(modality.encode(processor, cfg, texts))
