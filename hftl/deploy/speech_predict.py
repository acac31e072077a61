"""``hftl predict`` for speech recognition: transcribe audio files with an export (ORT fp32 / int8) or a run (PyTorch).

Inputs are gathered as for classification (files, folders, tables, list files: hftl.deploy.batch_predict). Each clip
is decoded with soundfile, resampled to the model's rate when it differs (the row says so), and refused when it is
longer than the encoder's window; an unreadable input gets its error and the others go on.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from hftl import files
from hftl.config import load_config
from hftl.deploy.batch_predict import Item
from hftl.deploy.export import EXPORT_CONFIG
from hftl.deploy.speech_run import SPEECH_TASK, run_task
from hftl.deploy.speech_runtime import (
    SpeechRecognizer,
    is_speech_export,
    load_clip,
    load_onnx_recognizer,
    load_torch_recognizer,
)
from hftl.errors import DataError, HftlError
from hftl.run import rundir

DEFAULT_AUDIO_COLUMN = "audio"


@dataclass
class Transcript:
    item: Item
    text: str = ""
    seconds: float | None = None
    note: str = ""
    error: str = ""


def speech_target(path: str | Path) -> Path | None:
    """The speech export or run ``path`` stands for (a run: its onnx/ export, else the run itself), or None."""
    path = Path(path)
    if is_speech_export(path):
        return path
    if (path / rundir.CONFIG).is_file() and run_task(path) == SPEECH_TASK:
        return path / "onnx" if is_speech_export(path / "onnx") else path
    return None


def load_recognizer(
    target: Path, *, quantized: bool = False, num_threads: int | None = None, allow_spinning: bool = True
) -> tuple[SpeechRecognizer, str]:
    """(recogniser, default input column) for :func:`speech_target`'s folder: ORT for an export, PyTorch for a run;
    either decodes with the run's greedy cap (an export's recorded one, a run's ``asr.max_new_tokens``). ``hftl serve``
    loads the same one, with its threads per worker."""
    if is_speech_export(target):
        cfg_path = target / EXPORT_CONFIG
        column = load_config(cfg_path).data.input_column if cfg_path.is_file() else DEFAULT_AUDIO_COLUMN
        return load_onnx_recognizer(target, quantized=quantized, num_threads=num_threads, allow_spinning=allow_spinning), column
    if quantized:
        raise HftlError(f"--quantized is for exports: {target} has no onnx/ export yet (run `hftl export {target}`)")
    cfg = load_config(target / rundir.CONFIG)
    recognizer = load_torch_recognizer(target / "model", max_new_tokens=cfg.asr.max_new_tokens, num_threads=num_threads)
    return recognizer, cfg.data.input_column


def transcribe_items(
    recognizer: SpeechRecognizer, items: list[Item], *, batch_size: int = 8, progress: bool = True
) -> list[Transcript]:
    """Transcripts in input order; unreadable, corrupt or too long clips get their error instead."""
    from tqdm.auto import tqdm

    out: list[Transcript] = []
    with tqdm(total=len(items), unit="clip", desc="transcribe", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            results, clips = [], []
            for item in batch:
                try:
                    clip = load_clip(item.value, recognizer.processor)
                except DataError as err:
                    results.append(Transcript(item, error=str(err)))
                    continue
                clips.append(clip)
                results.append(Transcript(item, seconds=round(clip.seconds, 3), note=clip.note))
            texts = iter(recognizer.transcribe([c.wave for c in clips], batch_size=batch_size) if clips else [])
            for result in results:
                if not result.error:
                    result.text = next(texts)
            out += results
            bar.update(len(batch))
    return out


def _row(t: Transcript) -> dict:
    return {"id": t.item.id, "input": t.item.input, "line": t.item.line, "transcript": t.text, "seconds": t.seconds,
            "note": t.note, "error": t.error}  # fmt: skip


def write_transcripts(results: list[Transcript], path: str | Path) -> Path:
    """CSV or JSON Lines by the file's suffix (id, input, line, transcript, seconds, note, error), written atomically."""
    path = Path(path)
    rows = [_row(t) for t in results]
    if path.suffix == ".jsonl":
        files.write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return path
    if path.suffix != ".csv":
        raise HftlError(f"--output {path}: name a .csv or .jsonl file")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    files.write_text_atomic(path, buffer.getvalue())
    return path


def format_transcripts(results: list[Transcript]) -> str:
    """seconds, transcript, input per clip (paths whole, so they can be found); errors and notes on their own rows."""
    lines = [f"{'seconds':>7}  transcript  |  input"]
    for t in results:
        if t.error:
            lines.append(f"{'ERROR':>7}  " + (t.error if t.item.input in t.error else f"{t.item.input}: {t.error}"))
            continue
        lines.append(f"{t.seconds:>7.2f}  {t.text}  |  {t.item.input}" + (f"  ({t.note})" if t.note else ""))
    return "\n".join(lines)
