"""``hftl predict``: classify many inputs with an ONNX export, in batches, into a CSV / JSONL file or a table.

Inputs, each argument one of:
- a folder: every image / audio file under it (links followed), or every ``.txt`` file (one text each) for text;
- a table (``.csv`` / ``.tsv`` / ``.jsonl`` / ``.json`` lines): the ``--column`` of each row (default: the run's
  ``data.input_column``); media paths in it are relative to the table's folder;
- a list file (``.txt`` / ``.lst`` / ``.list``): one input per line (a text, or a file path relative to the list);
- anything else: one input (a text, or an image / audio file path).
Each output row names its input so it can be joined back: the full file path, or the table's row id (0-based data
row) and editor line, with the top label, its score and the top-k labels with theirs. An input that cannot be read
gets a row with its error instead of stopping the others.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hftl import files
from hftl.errors import DataError, HftlError
from hftl.modalities import get_modality
from hftl.run.text_files import check_encoding

TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json"}
LIST_SUFFIXES = {".lst", ".list"}  # and .txt, except for a text model's folder of .txt files
OUTPUT_SUFFIXES = {".csv", ".jsonl"}
_OPTION = "--encoding "  # how a predict user names the encoding


@dataclass
class Item:
    """One input: ``value`` goes to the model; ``id`` and ``input`` go to the output to join it back."""

    id: str
    input: str
    value: Any = None
    line: int | None = None  # editor line, for a table row


@dataclass
class Prediction:
    item: Item
    label: str = ""
    score: float | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""


def gather_inputs(args: list[str], modality: str, column: str, encoding: str = "utf-8") -> list[Item]:
    """Expand the command-line inputs into items, in order (see the module docstring).

    Raises:
        DataError: a folder without inputs, a table without ``column``, a file not in ``encoding`` (byte and line named).
    """
    media = get_modality(modality).reads_files  # images, audio clips: else the inputs are texts
    suffixes = get_modality(modality).file_suffixes if media else {".txt"}
    items: list[Item] = []
    for arg in args:
        path = Path(arg).expanduser()
        if path.is_dir():
            items += _folder_items(path, suffixes, media, encoding)
        elif path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
            check_encoding(path, encoding, _OPTION)
            items += _table_items(path, column, media, encoding)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES | {".txt"}:
            check_encoding(path, encoding, _OPTION)
            items += _list_items(path, media, encoding)
        elif not media:
            items.append(Item(str(len(items)), arg, arg))
        else:
            items.append(Item(str(path.absolute()), str(path.absolute()), str(path.absolute())))
    if not items:
        raise DataError(f"no inputs found in {args}")
    return items


def _folder_items(folder: Path, suffixes: Set[str], media: bool, encoding: str) -> list[Item]:
    files = sorted(
        Path(root, name).absolute()
        for root, dirs, names in os.walk(folder, followlinks=True)
        for name in names
        if Path(name).suffix.lower() in suffixes and not name.startswith(".")
    )
    if not files:
        raise DataError(f"{folder}: no {'/'.join(sorted(suffixes))} files inside")
    if not media:
        for f in files:
            check_encoding(f, encoding, _OPTION)
        return [Item(str(f), str(f), f.read_text(encoding=encoding).strip()) for f in files]
    return [Item(str(f), str(f), str(f)) for f in files]


def _table_rows(path: Path, encoding: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(editor line, row) per record."""
    with path.open(newline="", encoding=encoding) as f:
        if path.suffix in (".csv", ".tsv"):
            reader = csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ",")
            line = 2
            for row in reader:
                yield line, row
                line = reader.line_num + 1
            return
        for line, text in enumerate(f, start=1):
            if text.strip():
                try:
                    yield line, json.loads(text)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path} line {line}: not a JSON object ({err.msg}); use JSON Lines") from err


def _table_items(path: Path, column: str, media: bool, encoding: str) -> list[Item]:
    items = []
    for row, (line, record) in enumerate(_table_rows(path, encoding)):
        if column not in record:
            raise DataError(f"{path} line {line}: no column '{column}' (columns: {list(record)}); pass --column NAME")
        value = "" if record[column] is None else str(record[column])
        shown = str(_media_path(value, path.parent)) if media else value
        items.append(Item(str(row), shown, shown, line))
    return items


def _list_items(path: Path, media: bool, encoding: str) -> list[Item]:
    items = []
    for line, text in enumerate(path.read_text(encoding=encoding).splitlines(), start=1):
        if not text.strip():
            continue
        value = str(_media_path(text.strip(), path.parent)) if media else text.strip()
        items.append(Item(value if media else str(line), value, value))
    return items


def _media_path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path.absolute() if path.is_absolute() or not (base / path).exists() else (base / path).absolute()


def predict_items(
    loaded: tuple[Any, Any, Any, Any], items: list[Item], *, batch_size: int = 32, top_k: int = 3, progress: bool = True
) -> list[Prediction]:
    """Classify items in batches; ``loaded`` is :func:`hftl.deploy.export.load_classifier`'s (config, modality,
    processor, classifier) for an export or a run. An unreadable input gets its error, the rest go on."""
    from tqdm.auto import tqdm

    from hftl.deploy.runtime import softmax

    cfg, modality, processor, classifier = loaded
    names = [classifier.id2label.get(i, f"LABEL_{i}") for i in range(len(classifier.id2label))]
    k = max(1, min(top_k, len(names)))
    out: list[Prediction] = []
    with tqdm(total=len(items), unit="input", desc="predict", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            good, features, errors = _encode(batch, modality, processor, cfg)
            probs = softmax(classifier.logits(features)) if good else []
            by_id = {id(item): p for item, p in zip(good, probs, strict=True)}
            for item in batch:
                if id(item) not in by_id:
                    out.append(Prediction(item, error=errors[id(item)]))
                    continue
                p = by_id[id(item)]
                order = np.argsort(-p)[:k]
                top = [(names[int(i)], float(p[i])) for i in order]
                out.append(Prediction(item, top[0][0], top[0][1], top))
            bar.update(len(batch))
    return out


def _encode(batch: list[Item], modality: Any, processor: Any, cfg: Any) -> tuple[list[Item], Any, dict[int, str]]:
    """The batch's readable items, their features, and each unreadable item's error (looked for only on a failure)."""
    try:
        return batch, modality.encode(processor, cfg, [i.value for i in batch]), {}
    except DataError:
        pass
    good, errors = [], {}
    for item in batch:
        try:
            modality.check_input(item.value, cfg)
            good.append(item)
        except DataError as err:
            errors[id(item)] = str(err)
    return good, modality.encode(processor, cfg, [i.value for i in good]) if good else None, errors


def write_predictions(predictions: list[Prediction], path: Path) -> Path:
    """CSV (id, input, label, score, top_k as JSON, error) or JSON Lines, by the file's suffix; written atomically."""
    path = Path(path)
    if path.suffix not in OUTPUT_SUFFIXES:
        raise HftlError(f"--output {path}: name a .csv or .jsonl file")
    rows = [_row(p) for p in predictions]
    if path.suffix == ".jsonl":
        files.write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return path
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "top_k": json.dumps(r["top_k"], ensure_ascii=False), "score": _score(r["score"])})
    files.write_text_atomic(path, buffer.getvalue())
    return path


def _row(p: Prediction) -> dict[str, Any]:
    row: dict[str, Any] = {"id": p.item.id, "input": p.item.input, "line": p.item.line}
    top = [{"label": label, "score": round(score, 6)} for label, score in p.top_k]
    return {**row, "label": p.label, "score": None if p.score is None else round(p.score, 6), "top_k": top, "error": p.error}


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def format_table(predictions: list[Prediction], width: int = 70) -> str:
    """label, score, the runner-up, and the input (texts cut to ``width``; paths shown whole, so they can be found)."""
    runners = [f"{p.top_k[1][0]} {p.top_k[1][1]:.3f}" if len(p.top_k) > 1 else "" for p in predictions]
    label_w = max(5, *(len(p.label) for p in predictions))
    next_w = max(4, *(len(r) for r in runners))
    lines = [f"{'label':<{label_w}} {'score':>6}  {'next':<{next_w}}  input"]
    for p, runner in zip(predictions, runners, strict=True):
        shown = p.item.input.replace("\n", " ")
        if not Path(shown).is_absolute() and len(shown) > width:
            shown = shown[: width - 3] + "..."
        if p.error:
            lines.append(f"{'ERROR':<{label_w}} {'':>6}  {'':<{next_w}}  " + (p.error if shown in p.error else f"{shown}: {p.error}"))
            continue
        lines.append(f"{p.label:<{label_w}} {p.score:>6.3f}  {runner:<{next_w}}  {shown}")
    return "\n".join(lines)
