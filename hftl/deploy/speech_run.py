"""A speech recognition run's path to ONNX: what only the run knows (its task, config, model and test split).

Relies on the run directory as the training side writes it:
    RUN/results.json   ``run.task == "speech_recognition"`` (absent: a classification run)
    RUN/config.yaml    ``data.source`` / ``data.test_split``, ``data.input_column`` (audio) and
                       ``data.label_column`` (transcript), the ``export`` section
    RUN/model/         the merged WhisperForConditionalGeneration + WhisperProcessor (save_pretrained)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hftl.config import Config, load_config
from hftl.deploy.export import EXPORT_CONFIG
from hftl.deploy.speech_card import SPEECH_TASK
from hftl.deploy.speech_export import export_speech_and_check
from hftl.deploy.speech_runtime import Clip, load_clip
from hftl.errors import DataError, ExportError, HftlError
from hftl.run import rundir
from hftl.run.transcribed_data import load_transcribed_splits

logger = logging.getLogger("hftl")

__all__ = ["SPEECH_TASK", "export_speech_run", "held_out_clips", "run_task"]


def run_task(run_dir: str | Path) -> str:
    """``run.task`` of RUN/results.json: ``classification`` when absent (runs written before the task axis)."""
    path = Path(run_dir) / rundir.RESULTS
    if not path.is_file():
        return "classification"
    try:
        run = json.loads(path.read_text(encoding="utf-8")).get("run") or {}
    except (OSError, json.JSONDecodeError) as err:
        raise HftlError(f"{path}: not readable as JSON ({err})") from err
    return str(run.get("task") or "classification")


def held_out_clips(cfg: Config, processor: Any) -> tuple[list[Clip], list[str]]:
    """The run's test split as clips for ``processor`` and their transcripts (first ``export.max_samples`` rows).

    Raises:
        DataError: no test split, a missing column, an unreadable clip or an empty transcript (split, row, file named).
    """
    from hftl.modalities.audio import data_root

    data = cfg.data
    # the test rows the run itself scored: a named test split, or the one carved from train (same seed, same rows)
    splits = load_transcribed_splits(data)
    if "test" not in splits:
        raise DataError(f"{data.source} has no test split: the export is checked on held-out speech; set data.test_split")
    rows = splits["test"]
    if cfg.export.max_samples is not None:
        rows = rows.select(range(min(len(rows), cfg.export.max_samples)))
    root = data_root(cfg)
    clips, references = [], []
    for i, (audio, text) in enumerate(zip(rows[data.input_column], rows[data.label_column], strict=True)):
        where = f"{data.source} test split row {i}"
        try:
            clips.append(load_clip(audio, processor, root))
        except DataError as err:
            raise DataError(f"{where}: {err}") from err
        if not str(text or "").strip():
            raise DataError(f"{where}: empty transcript in column {data.label_column!r}")
        references.append(str(text))
    return clips, references


def export_speech_run(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Export RUN_DIR/model to RUN_DIR/onnx, gated on the run's test split (see hftl.deploy.speech_export)."""
    from transformers import AutoProcessor

    run_dir = Path(run_dir)
    config_path, model_dir = run_dir / rundir.CONFIG, run_dir / "model"
    if not config_path.is_file() or not (model_dir / "config.json").is_file():
        raise ExportError(
            f"{run_dir} is not a finished speech recognition run with a merged model (need {config_path} and "
            f"{model_dir}/config.json; train with output.save_merged=true)"
        )
    cfg = load_config(config_path, overrides)
    processor = AutoProcessor.from_pretrained(model_dir)
    clips, references = held_out_clips(cfg, processor)
    return export_speech_and_check(
        model_dir, run_dir / "onnx", clips, references, cfg.export,
        extra_files={EXPORT_CONFIG: config_path}, source=f"test clips of {cfg.data.source}",
        max_new_tokens=cfg.asr.max_new_tokens,  # the run's cap: its test WER was scored with it
    )  # fmt: skip
