"""``hftl evaluate RUN_DIR --data SOURCE``: score a finished run on other labelled data (a new batch, another domain).

The run's label names are matched by name against the data's (a subset of classes is fine; a label the model never
saw is an error naming it). The model runs as trained (torch: the merged model, or the adapter on its base) or as
exported (ONNX fp32 / int8), so a user can check the artefact they will ship. Everything lands in
``RUN_DIR/evaluations/<name>/``: evaluation.json (metrics, per-class precision/recall/F1, confusion matrix),
confusion_matrix.png and predictions.csv (one row per input: the input, its label, the prediction and its score).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from hftl import files
from hftl.config import Config, load_config
from hftl.errors import HftlError
from hftl.evaluation.confusion_plot import save_confusion_png
from hftl.modalities import Modality, get_modality
from hftl.run import rundir
from hftl.run.data import load_labelled_split
from hftl.run.metrics import compute_metrics
from hftl.run.metrics.per_class import format_per_class, per_class_report
from hftl.run.record import read_record

logger = logging.getLogger("hftl")

BACKENDS = ("torch", "onnx", "onnx-int8")
EVALUATIONS = "evaluations"
RECORD = "evaluation.json"


@dataclasses.dataclass
class Scored:
    probabilities: np.ndarray  # (rows, num_labels)
    labels: np.ndarray  # true label ids


def evaluation_name(source: str, backend: str) -> str:
    """A folder name from the data source (its file or folder name) and the backend when not torch."""
    stem = Path(source.removeprefix("zoo:").rstrip("/")).stem or "data"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)
    return name if backend == "torch" else f"{name}-{backend}"


def evaluate_run(
    run_dir: str | Path,
    source: str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    backend: str = "torch",
    split: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Score RUN_DIR's model on ``source`` and write ``RUN_DIR/evaluations/<name>/``; returns evaluation.json's dict.

    Args:
        overrides: ``data.*`` (and other) config settings for reading the new data, e.g. ``data.input_column=review``.
        backend: ``torch`` (the trained model), ``onnx`` or ``onnx-int8`` (the export; run ``hftl export`` first).
        split: The source's split to score; default its test split, else all of it (its train split).

    Raises:
        HftlError: not a finished run, no export for an ONNX backend, or bad data (named by DataError).
    """
    if backend not in BACKENDS:
        raise HftlError(f"--backend {backend}: choose one of {list(BACKENDS)}")
    run_dir = Path(run_dir)
    results_path, config_path = run_dir / rundir.RESULTS, run_dir / rundir.CONFIG
    if not results_path.is_file() or not config_path.is_file():
        raise HftlError(f"{run_dir} is not a finished run (need {results_path} and {config_path})")
    record = read_record(run_dir)
    if record.run.task != "classification":  # new data for a speech recogniser: a run whose test split is that data
        raise HftlError(
            f"{run_dir} is a {record.run.task} run: `hftl evaluate` scores classifiers on new data; transcribe "
            f"files with `hftl predict {run_dir} CLIP.wav ...` (a run scores WER on its test split and asr.extra_splits)"
        )
    names = [str(n) for n in record.data.labels]
    cfg = load_config(config_path, [f"data.source={source}", *overrides])
    modality = get_modality(cfg.modality)
    started = time.time()
    skipped: list[dict[str, Any]] = []
    data, split = load_labelled_split(cfg.data, names, split, lambda v: modality.check_input(v, cfg), skipped)
    logger.info("scoring %s on %d rows of %s (split %s) with %s", run_dir, len(data), source, split, backend)
    if backend == "torch":
        scored = _score_torch(run_dir, cfg, modality, names, data)
    else:
        scored = _score_onnx(run_dir, cfg, modality, data, quantized=backend == "onnx-int8")
    predictions = scored.probabilities.argmax(axis=1)
    record = {
        "run": str(run_dir),
        "source": source,
        "split": split,
        "backend": backend,
        "rows": len(data),
        "skipped_samples": skipped,
        "seconds": round(time.time() - started, 2),
        "metrics": compute_metrics(cfg.evaluation.metrics, predictions, scored.labels),
        "per_class": per_class_report(predictions, scored.labels, names),
    }
    out = run_dir / EVALUATIONS / (name or evaluation_name(source, backend))
    _write(out, record, data, cfg, names, scored)
    record["dir"] = str(out)
    return record


def _score_torch(run_dir: Path, cfg: Config, modality: Modality, names: list[str], data: Any) -> Scored:
    import torch
    from torch.utils.data import DataLoader

    model, processor = _load_torch(run_dir, cfg, modality, names)
    prepared = modality.prepare(data, processor, cfg, train=False)
    loader = DataLoader(prepared, batch_size=cfg.evaluation.batch_size, collate_fn=modality.collator(processor, cfg))
    probabilities, labels = [], []
    with torch.no_grad():
        for batch in loader:
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
            probabilities.append(torch.softmax(logits, dim=-1).numpy())
            labels.append(batch["labels"].numpy())
    return Scored(np.concatenate(probabilities), np.concatenate(labels))


def _load_torch(run_dir: Path, cfg: Config, modality: Modality, names: list[str]) -> tuple[Any, Any]:
    """The run's merged model (RUN/model), else its adapter on its base, and the processor saved with it."""
    from hftl.run.models import find_adapter, load_adapter_classifier

    model_dir = run_dir / "model"
    if (model_dir / "config.json").is_file():
        model = modality.auto_model().from_pretrained(
            str(model_dir), use_safetensors=True, trust_remote_code=cfg.model.trust_remote_code
        )
        modality.adapt_model(model, cfg)
        return model.eval(), modality.load_processor(str(model_dir), cfg)
    adapter = find_adapter(str(run_dir / "adapter"))
    if adapter is None:
        raise HftlError(f"{run_dir} has neither a merged model ({model_dir}) nor an adapter to evaluate")
    model = load_adapter_classifier(
        adapter, modality, names, trainable=False, trust_remote_code=cfg.model.trust_remote_code, cfg=cfg
    )
    processor_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, revision=adapter.processor_revision))
    return model.eval(), modality.load_processor(adapter.processor_source, processor_cfg)


def _score_onnx(run_dir: Path, cfg: Config, modality: Modality, data: Any, *, quantized: bool) -> Scored:
    from hftl.deploy.runtime import FP32_FILE, INT8_FILE, OnnxClassifier, softmax

    onnx_dir = run_dir / "onnx"
    wanted = onnx_dir / (INT8_FILE if quantized else FP32_FILE)
    if not wanted.is_file():
        raise HftlError(f"{wanted} not found: export the run first (`hftl export {run_dir}`)")
    processor = modality.load_processor(str(onnx_dir), cfg)
    classifier = OnnxClassifier(onnx_dir, quantized=quantized)
    column, step = cfg.data.input_column, cfg.evaluation.batch_size
    probabilities = []
    for start in range(0, len(data), step):
        inputs = data[start : start + step][column]
        probabilities.append(softmax(classifier.logits(modality.encode(processor, cfg, inputs))))
    return Scored(np.concatenate(probabilities), np.asarray(data[cfg.data.label_column]))


def _write(out: Path, record: dict[str, Any], data: Any, cfg: Config, names: list[str], scored: Scored) -> None:
    """evaluation.json, confusion_matrix.png and predictions.csv, written aside and swapped in whole."""
    tmp = out.parent / f".tmp-{out.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files.write_json_atomic(tmp / RECORD, record)
    title = f"{record['source']} ({record['split']}, {record['rows']} rows, {record['backend']})"
    save_confusion_png(record["per_class"], tmp / "confusion_matrix.png", title)
    inputs = _shown_inputs(data, cfg.data.input_column)
    with (tmp / "predictions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "input", "label", "predicted", "score"])
        for row, (shown, true, probs) in enumerate(zip(inputs, scored.labels, scored.probabilities, strict=True)):
            top = int(probs.argmax())
            writer.writerow([row, shown, names[int(true)], names[top], f"{probs[top]:.6f}"])
    files.replace_dir(tmp, out)


def _shown_inputs(data: Any, column: str) -> list[str]:
    """Each input as a user finds it: a file path for images and audio, the text itself for text."""
    from datasets import Audio, Image

    feature = data.features[column]
    if isinstance(feature, (Image, Audio)):
        data = data.cast_column(column, type(feature)(decode=False))
    return [str(v.get("path") or "<embedded bytes>") if isinstance(v, dict) else str(v) for v in data[column]]


def format_evaluation(record: dict[str, Any]) -> str:
    """The printed table: metrics, per-class precision/recall/F1/support, the confusion matrix, where files went."""
    lines = [
        f"evaluated {record['run']} on {record['source']} (split {record['split']}, {record['rows']} rows, "
        f"backend {record['backend']}, {record['seconds']:.1f} s)",
        "  " + "  ".join(f"{k} {v:.4f}" for k, v in record["metrics"].items()),
        *format_per_class(record["per_class"]),
    ]
    if record["skipped_samples"]:
        lines.append(f"  {len(record['skipped_samples'])} rows left out (data.on_bad_sample=skip): see {RECORD}")
    if record.get("dir"):
        lines.append(f"  written to {record['dir']}/ ({RECORD}, confusion_matrix.png, predictions.csv)")
    return "\n".join(lines)
