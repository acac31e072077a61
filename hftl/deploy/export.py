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


def preprocessing_config(folder: Path) -> Path | None:
    """The run config a servable folder preprocesses with: an export's own copy (EXPORT_CONFIG), or for a run's
    PyTorch model (RUN_DIR/model) the run's config.yaml; None for any other folder."""
    folder = Path(folder)
    if (folder / EXPORT_CONFIG).is_file():
        return folder / EXPORT_CONFIG
    if (folder / "config.json").is_file() and (folder.parent / rundir.CONFIG).is_file():
        return folder.parent / rundir.CONFIG
    return None


def load_preprocessing(folder: str | Path) -> tuple[Config, Any, Any]:
    """(config, modality, processor) of an export folder or a run's model/: the preprocessing the model was trained with.

    Raises:
        HftlError: the folder is neither.
    """
    folder = Path(folder)
    config = preprocessing_config(folder)
    if config is None:
        raise HftlError(f"{folder} is not an hftl export (no {EXPORT_CONFIG}); run `hftl export RUN_DIR` first")
    cfg = load_config(config)
    modality = get_modality(cfg.modality)
    return cfg, modality, modality.load_processor(str(folder), cfg)


def serving_target(path: str | Path, backend: str = "auto") -> tuple[Path, str]:
    """(folder, runtime) that serves ``path`` on ``backend`` (a row of hftl.deploy.backends.BACKENDS, or auto), for
    `hftl predict` and `hftl serve`.

    ``auto``: an export folder on the runtime it was written for; a run folder on its fastest export
    (:func:`serving_dir`), else on its own PyTorch model (RUN_DIR/model, ``torch``). A named runtime: ``path`` when it
    is that runtime's folder, else RUN_DIR/<its folder> (``torch``: RUN_DIR/model, also where the run has exports).

    Raises:
        HftlError: nothing there for that runtime (the message names what is missing and the command that writes it).
    """
    from hftl.deploy.backends import AUTO, BACKENDS, backend_of

    path = Path(path).expanduser()
    if backend == AUTO:
        folder = serving_dir(path)
        if (folder / EXPORT_CONFIG).is_file():
            return folder, backend_of(folder)
        if preprocessing_config(path / "model") is not None:
            return path / "model", "torch"
        raise HftlError(
            f"{path} is not an hftl export (no {EXPORT_CONFIG} in it, in {path / 'onnx'} or in {path / 'openvino'}) "
            "nor a finished run with a model/ folder; run `hftl export RUN_DIR [--backend openvino]` first"
        )
    if backend not in BACKENDS:
        raise HftlError(f"--backend {backend}: choose {AUTO} or one of {sorted(BACKENDS)}")
    spec = BACKENDS[backend]
    for candidate in (path, path / spec.folder):
        if preprocessing_config(candidate) is not None and (candidate / spec.marker).is_file():
            return candidate, backend
    if not spec.exported:
        raise HftlError(
            f"--backend {backend}: {path} is not a finished run with a PyTorch model (no {path / spec.folder / spec.marker} "
            f"beside {path / rundir.CONFIG}): give the run folder RUN_DIR, not one of its exports"
        )
    flag = "" if spec.folder == "onnx" else f" --backend {spec.folder}"
    raise HftlError(
        f"--backend {backend}: {path} holds no {backend} export (no {spec.marker} with {EXPORT_CONFIG} in it or in "
        f"{path / spec.folder}); run `hftl export RUN_DIR{flag}` first"
    )


def load_classifier(
    path: str | Path, *, backend: str = "auto", quantized: bool = False, precision: str = "measured"
) -> tuple[Config, Any, Any, Any]:
    """(config, modality, processor, classifier) for ``path`` on ``backend`` (:func:`serving_target`).

    ``auto``: an ONNX export (RUN/onnx: onnxruntime), an OpenVINO export (RUN/openvino), or a finished run: its
    fastest export (:func:`serving_dir`), else PyTorch on RUN/model; ``torch`` asks for RUN/model where the run has
    exports too. Of an export, the variant the export measured fastest on this CPU within 0.5 point of fp32, and of
    PyTorch fp32 (:func:`hftl.deploy.default_variant.resolve`, logged with its reason) unless ``quantized`` (int8)
    or ``precision`` (fp32, or bf16/auto where the backend has bf16: OpenVINO, PyTorch) names one. Every classifier
    has ``id2label``, ``logits(features)`` and ``classify(features)``.

    Raises:
        HftlError: nothing to serve at ``path`` on ``backend``, or a variant that backend does not run.
    """
    from hftl.deploy.backends import load_backend
    from hftl.deploy.default_variant import resolve as resolve_variant

    folder, backend = serving_target(path, backend)
    choice = resolve_variant(folder, backend, quantized=quantized, precision=precision)
    cfg, modality, processor = load_preprocessing(folder)
    logger.info("%s: %s %s, %s", folder, backend, choice.variant, choice.reason)
    # spin: a command's batches come back to back, so onnxruntime's threads may busy-wait between them
    classifier = load_backend(backend, folder, quantized=choice.quantized, num_threads=None, spin=True,
                              precision=choice.precision)  # fmt: skip
    return cfg, modality, processor, classifier


def predict(
    path: str | Path, inputs: list[str], *, backend: str = "auto", quantized: bool = False, precision: str = "measured"
) -> list[tuple[str, float]]:
    """(label, score) per raw input, with the preprocessing the model was trained with (backend: :func:`load_classifier`)."""
    cfg, modality, processor, classifier = load_classifier(path, backend=backend, quantized=quantized, precision=precision)
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

