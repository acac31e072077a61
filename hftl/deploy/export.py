"""A run directory's path to ONNX and back: export a finished run, and classify raw inputs with the export.

The ONNX mechanics (optimum export, parity gate, int8, latency) are in ``hftl.deploy.onnx``; this module supplies
what only the run knows: its config, its modality's preprocessing and its test split.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from hftl import files
from hftl.config import Config, load_config
from hftl.errors import HftlError
from hftl.modalities import get_modality
from hftl.run import rundir
from hftl.run.data import load_splits, stratified_sample
from hftl.run.record import read_record

logger = logging.getLogger("hftl")

# Saved next to model.onnx so an ONNX folder can be served on its own (predict needs the preprocessing settings).
EXPORT_CONFIG = "hftl_config.yaml"


def _test_inputs(cfg: Config, processor: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    modality = get_modality(cfg.modality)
    splits, _ = load_splits(cfg.data)
    test = splits["test"]
    if cfg.export.max_samples is not None and len(test) > cfg.export.max_samples:
        labels = np.asarray(test[cfg.data.label_column])
        test = test.select(stratified_sample(labels, cfg.export.max_samples, cfg.data.split_seed))
    features = modality.encode(processor, cfg, list(test[cfg.data.input_column]))
    return features, np.asarray(test[cfg.data.label_column])


def export_run(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Export RUN_DIR/model to RUN_DIR/onnx, checked against PyTorch on the run's test split.

    Raises:
        HftlError: the run is not finished, or a gate (parity, NaN, int8 accuracy) failed; RUN_DIR/onnx is untouched then.
    """
    from hftl.deploy.onnx import export_and_check
    from hftl.run.models import ADAPTER_CONFIG

    run_dir = Path(run_dir)
    config_path, model_dir = run_dir / rundir.CONFIG, run_dir / "model"
    adapter_dir = run_dir / "adapter"
    has_adapter = (run_dir / rundir.RESULTS).is_file() and (adapter_dir / ADAPTER_CONFIG).is_file()
    if not config_path.is_file() or not ((model_dir / "config.json").is_file() or has_adapter):
        raise HftlError(
            f"{run_dir} is not a finished run with a merged model or an adapter (need {config_path} and {model_dir}/)"
        )
    cfg = load_config(config_path, overrides)
    if not (model_dir / "config.json").is_file():
        merge_run_adapter(run_dir, cfg)
    modality = get_modality(cfg.modality)
    processor = modality.load_processor(str(model_dir), cfg)
    features, labels = _test_inputs(cfg, processor)
    logger.info("exporting %s (%s) and checking it on %d test samples", model_dir, modality.onnx_task, len(labels))
    out_dir = run_dir / "onnx"
    report = export_and_check(
        model_dir,
        out_dir,
        modality.onnx_task,
        features,
        labels,
        parity_atol=cfg.export.parity_atol,
        quantize=cfg.export.quantize,
        max_int8_accuracy_drop=cfg.export.max_int8_accuracy_drop,
        num_threads=cfg.export.num_threads,
        latency_repeats=cfg.export.latency_repeats,
        opset=cfg.export.opset,
        auto_class=modality.auto_model_name,
        extra_files={EXPORT_CONFIG: config_path},
    )
    return report


def merge_run_adapter(run_dir: Path, cfg: Config) -> Path:
    """Write RUN_DIR/model from RUN_DIR/adapter merged into its base (a run saved with output.save_merged=false).

    optimum exports plain transformers models only, so the adapter is merged (merge_and_unload) first.
    """
    from hftl.run.models import find_adapter, load_adapter_classifier

    run_dir = Path(run_dir)
    modality = get_modality(cfg.modality)
    adapter = find_adapter(str(run_dir / "adapter"))
    if adapter is None:
        raise HftlError(f"{run_dir / 'adapter'} is not a PEFT adapter folder")
    labels = read_record(run_dir).data.labels
    logger.info("merging %s into its base %s to export it", adapter.ref, adapter.base)
    model = load_adapter_classifier(
        adapter, modality, labels, trainable=False, trust_remote_code=cfg.model.trust_remote_code, cfg=cfg
    ).merge_and_unload()
    processor_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, revision=adapter.processor_revision))
    processor = modality.load_processor(adapter.processor_source, processor_cfg)
    tmp = run_dir / ".tmp-model"
    model.save_pretrained(str(tmp), safe_serialization=True)
    processor.save_pretrained(str(tmp))
    files.replace_dir(tmp, run_dir / "model")
    return run_dir / "model"


def predict(onnx_dir: str | Path, inputs: list[str], *, quantized: bool = False) -> list[tuple[str, float]]:
    """(label, score) per raw input, with onnxruntime and the preprocessing the model was trained with."""
    from hftl.deploy.runtime import OnnxClassifier

    onnx_dir = Path(onnx_dir)
    if not (onnx_dir / EXPORT_CONFIG).is_file():
        raise HftlError(f"{onnx_dir} is not an hftl ONNX export (no {EXPORT_CONFIG}); run `hftl export RUN_DIR` first")
    cfg = load_config(onnx_dir / EXPORT_CONFIG)
    modality = get_modality(cfg.modality)
    processor = modality.load_processor(str(onnx_dir), cfg)
    classifier = OnnxClassifier(onnx_dir, quantized=quantized)
    return classifier.classify(modality.encode(processor, cfg, inputs))


def print_report(report: dict[str, Any]) -> None:
    """A short human summary of export_report.json."""
    parity, acc = report["parity"], report["accuracy"]
    print(f"ONNX export ({report['task']}, {report['num_samples']} test samples)")
    print(f"  parity   fp32 max|diff| {parity['fp32_max_abs_diff']:.2e}  int8 max|diff| {parity.get('int8_max_abs_diff')}")
    print("  accuracy " + "  ".join(f"{k} {v:.4f}" for k, v in acc.items() if isinstance(v, float) and k != "max_int8_drop"))
    latency = report.get("latency_ms") or {}
    for batch, row in latency.items():
        print(f"  latency {batch}: " + "  ".join(f"{k} {v:.2f} ms" for k, v in row.items() if v is not None))
