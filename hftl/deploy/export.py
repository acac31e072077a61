"""A run directory's path to ONNX and back: export a finished run, and classify raw inputs with the export.

The ONNX mechanics (optimum export, parity gate, int8, latency) are in ``hftl.deploy.onnx``; this module supplies
what only the run knows: its config, its modality's preprocessing and its test split.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from hftl import files
from hftl.config import Config, load_config
from hftl.deploy.onnx import export_and_check
from hftl.errors import HftlError
from hftl.modalities import get_modality
from hftl.models import refuse_export
from hftl.run import rundir
from hftl.run.data import load_splits, stratified_sample
from hftl.run.models import ADAPTER_CONFIG, find_adapter, merge_adapter
from hftl.run.record import read_record

logger = logging.getLogger("hftl")

# Saved next to model.onnx so an ONNX folder can be served on its own (predict needs the preprocessing settings).
EXPORT_CONFIG = "hftl_config.yaml"


# NNCF calibration rows for OpenVINO int8, from the train split (never test): enough for stable activation ranges.
CALIBRATION_ROWS = 300


def _test_inputs(cfg: Config, processor: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return _split_inputs(cfg, processor, "test", cfg.export.max_samples)


def _split_inputs(cfg: Config, processor: Any, split: str, max_samples: int | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    modality = get_modality(cfg.modality)
    splits, _ = load_splits(cfg.data)
    rows = splits[split]
    if max_samples is not None and len(rows) > max_samples:
        labels = np.asarray(rows[cfg.data.label_column])
        rows = rows.select(stratified_sample(labels, max_samples, cfg.data.split_seed))
    features = modality.encode(processor, cfg, list(rows[cfg.data.input_column]))
    return features, np.asarray(rows[cfg.data.label_column])


def export_run(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), backend: str = "onnx") -> dict[str, Any]:
    """Export RUN_DIR/model to RUN_DIR/onnx (or RUN_DIR/openvino), checked against PyTorch on the run's test split.

    Raises:
        HftlError: the run is not finished, or a gate (parity, NaN, int8 accuracy) failed; RUN_DIR/onnx is untouched then.
    """
    run_dir = Path(run_dir)
    from hftl.deploy.speech_run import SPEECH_TASK, export_speech_run, run_task

    if run_task(run_dir) == SPEECH_TASK:  # encoder-decoder: transcripts, not logits of one forward pass
        if backend != "onnx":
            raise HftlError(f"--backend {backend}: speech recognition runs export to onnx only")
        return export_speech_run(run_dir, overrides)
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
    refuse_export(json.loads((model_dir / "config.json").read_text()).get("model_type"), f"hftl export {run_dir}")
    modality = get_modality(cfg.modality)
    processor = modality.load_processor(str(model_dir), cfg)
    features, labels = _test_inputs(cfg, processor)
    logger.info("exporting %s (%s, %s) and checking it on %d test samples", model_dir, modality.onnx_task, backend, len(labels))
    if backend == "openvino":
        from hftl.deploy.openvino import export_openvino

        calibration = _split_inputs(cfg, processor, "train", CALIBRATION_ROWS)[0] if cfg.export.quantize else None
        return export_openvino(
            model_dir, run_dir / "openvino", modality.onnx_task, features, labels, calibration=calibration,
            parity_atol=cfg.export.parity_atol, max_int8_accuracy_drop=cfg.export.max_int8_accuracy_drop,
            num_threads=cfg.export.num_threads, auto_class=modality.auto_model_name,
            extra_files={EXPORT_CONFIG: config_path}, latency_repeats=cfg.export.latency_repeats,
        )  # fmt: skip
    if backend != "onnx":
        raise HftlError(f"--backend {backend}: choose onnx or openvino")
    out_dir = run_dir / "onnx"
    report = export_and_check(
        model_dir,
        out_dir,
        modality.onnx_task,
        features,
        labels,
        cfg.export,
        auto_class=modality.auto_model_name,
        extra_files={EXPORT_CONFIG: config_path},
    )
    return report


def merge_run_adapter(run_dir: Path, cfg: Config) -> Path:
    """Write RUN_DIR/model from RUN_DIR/adapter merged into its base (a run saved with output.save_merged=false).

    optimum exports plain transformers models only, so the adapter is merged (merge_and_unload) first.
    """
    run_dir = Path(run_dir)
    modality = get_modality(cfg.modality)
    adapter = find_adapter(str(run_dir / "adapter"))
    if adapter is None:
        raise HftlError(f"{run_dir / 'adapter'} is not a PEFT adapter folder")
    labels = read_record(run_dir).data.labels
    logger.info("merging %s into its base %s to export it", adapter.ref, adapter.base)
    model = merge_adapter(adapter, modality, labels, cfg)
    processor_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, revision=adapter.processor_revision))
    processor = modality.load_processor(adapter.processor_source, processor_cfg)
    tmp = run_dir / ".tmp-model"
    model.save_pretrained(str(tmp), safe_serialization=True)
    processor.save_pretrained(str(tmp))
    files.replace_dir(tmp, run_dir / "model")
    return run_dir / "model"


def load_preprocessing(onnx_dir: str | Path) -> tuple[Config, Any, Any]:
    """(config, modality, processor) of an export folder: the preprocessing the model was trained with.

    Raises:
        HftlError: the folder is not an hftl export.
    """
    onnx_dir = Path(onnx_dir)
    if not (onnx_dir / EXPORT_CONFIG).is_file():
        raise HftlError(f"{onnx_dir} is not an hftl ONNX export (no {EXPORT_CONFIG}); run `hftl export RUN_DIR` first")
    cfg = load_config(onnx_dir / EXPORT_CONFIG)
    modality = get_modality(cfg.modality)
    return cfg, modality, modality.load_processor(str(onnx_dir), cfg)


def load_classifier(path: str | Path, *, quantized: bool = False, precision: str = "measured") -> tuple[Config, Any, Any, Any]:
    """(config, modality, processor, classifier) for ``path``, whose kind picks the backend.

    An ONNX export (RUN/onnx: onnxruntime), an OpenVINO export (RUN/openvino), or a finished run: its fastest export
    (:func:`serving_dir`), else PyTorch on RUN/model in ``precision`` ("measured"/"no"/"fp32": fp32; "bf16"/"auto").
    Of an export, the variant the export measured fastest on this CPU within 0.5 point of fp32
    (:func:`hftl.deploy.default_variant.resolve`, logged with its reason) unless ``quantized`` (int8) or
    ``precision`` (fp32; bf16/auto on OpenVINO) names one. Every classifier has ``id2label``, ``logits(features)``
    and ``classify(features)``.
    """
    from hftl.deploy.default_variant import resolve as resolve_variant
    from hftl.deploy.openvino import FP32_XML

    path = serving_dir(Path(path))
    run_config = path / rundir.CONFIG
    if (path / EXPORT_CONFIG).is_file():
        cfg = load_config(path / EXPORT_CONFIG)
    elif run_config.is_file() and (path / "model" / "config.json").is_file():
        cfg = load_config(run_config)
    else:
        raise HftlError(
            f"{path} is neither an hftl export (no {EXPORT_CONFIG}; run `hftl export RUN_DIR [--backend openvino]`) "
            "nor a finished run with a model/ folder"
        )
    modality = get_modality(cfg.modality)
    if (path / EXPORT_CONFIG).is_file():
        backend = "openvino" if (path / FP32_XML).is_file() else "onnxruntime"
        choice = resolve_variant(path, backend, quantized=quantized, precision=precision)
        logger.info("%s: %s %s, %s", path, backend, choice.variant, choice.reason)
        if backend == "openvino":
            from hftl.deploy.openvino import OpenVinoClassifier

            hint = "bf16" if choice.variant == "bf16" else "f32"
            classifier = OpenVinoClassifier(path, quantized=choice.variant == "int8", precision=hint)
        else:
            from hftl.deploy.runtime import OnnxClassifier

            classifier = OnnxClassifier(path, quantized=choice.variant == "int8")
        processor_dir = path
    else:
        from hftl.deploy.torch_backend import TorchClassifier

        if quantized:
            raise HftlError("--quantized is for exports (RUN/onnx, RUN/openvino); a run's PyTorch model has no int8 copy")
        processor_dir = path / "model"
        classifier = TorchClassifier(processor_dir, precision="no" if precision in ("measured", "fp32") else precision)
    return cfg, modality, modality.load_processor(str(processor_dir), cfg), classifier


def predict(
    path: str | Path, inputs: list[str], *, quantized: bool = False, precision: str = "measured"
) -> list[tuple[str, float]]:
    """(label, score) per raw input, with the preprocessing the model was trained with (backend: :func:`load_classifier`)."""
    cfg, modality, processor, classifier = load_classifier(path, quantized=quantized, precision=precision)
    return classifier.classify(modality.encode(processor, cfg, inputs))


def serving_dir(path: Path) -> Path:
    """For a run folder, the export that serves fastest: OpenVINO (when the extra is installed), else ONNX, else the
    run itself (PyTorch). The order is measured (bench/ladder.py, README "Precision and backend defaults"): OpenVINO
    was ahead of ONNX Runtime at batch 1 and 32 on both the AMD EPYC and the AMX Xeon, and both ahead of PyTorch."""
    import importlib.util

    if (path / EXPORT_CONFIG).is_file() or not (path / rundir.CONFIG).is_file():
        return path
    if (path / "openvino" / EXPORT_CONFIG).is_file() and importlib.util.find_spec("openvino") is not None:
        return path / "openvino"
    if (path / "onnx" / EXPORT_CONFIG).is_file():
        return path / "onnx"
    return path

