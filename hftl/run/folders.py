"""Read a folder of image or audio files in the Hugging Face imagefolder / audiofolder layouts.

Layouts (as datasets' own builders read them):
- ``<class>/<file>``: the label is the class folder's name; one split (train).
- ``<split>/<class>/<file>``: splits named train / validation / test (or HF's aliases: val, valid, dev, eval, ...).
- ``metadata.csv`` / ``metadata.jsonl`` with a ``file_name`` column (relative to the metadata file's folder) and any
  other columns, at the root or inside a split folder: a ``label`` column there is the label (else the class folder's
  name, when files sit in class folders); a ``split`` column in it assigns rows to splits.
Folders that are symbolic links are followed (a link loop is refused). Hidden files and folders are ignored.

Our own reader rather than datasets' builders: the audiofolder builder yields ``Audio()``, which needs torchcodec
(not in this stack); audio comes out as path strings relative to the folder (so it can move), images as an
``Image()`` column of absolute paths.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

from hftl.errors import DataError
from hftl.modalities.audio import AUDIO_SUFFIXES
from hftl.modalities.vision import IMAGE_SUFFIXES

TABLE_SUFFIXES = {".csv", ".tsv", ".json", ".jsonl", ".parquet"}
METADATA_NAMES = ("metadata.csv", "metadata.jsonl")
# datasets' split-name keywords (datasets.data_files): a top-level folder with one of these names is that split
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}  # fmt: skip


def _walk(root: Path) -> list[Path]:
    """Every non-hidden file under root, following folder links; a link back into its own ancestors is an error."""
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            raise DataError(f"{folder}: a symbolic link loop (it leads back to {real}); remove the link")
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in sorted(files) if not f.startswith(".")]
    return found


def _kind(files: list[Path], where: Path) -> str | None:
    images = sum(f.suffix.lower() in IMAGE_SUFFIXES for f in files)
    audio = sum(f.suffix.lower() in AUDIO_SUFFIXES for f in files)
    if images and audio:
        raise DataError(f"{where}: holds both images ({images}) and audio files ({audio}); keep one kind per data set")
    return "image" if images else "audio" if audio else None


def is_media_folder(path: Path) -> bool:
    """A folder of image or audio files (class folders and/or metadata files), with no data table such as train.csv."""
    if not path.is_dir():
        return False
    if any(p.suffix in TABLE_SUFFIXES and p.name not in METADATA_NAMES for p in path.glob("*.*")):
        return False
    return _kind(_walk(path), path) is not None


def _read_metadata(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) per record of a metadata.csv / metadata.jsonl file."""
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        if path.suffix == ".csv":
            reader = csv.DictReader(f)
            start = 2
            for row in reader:
                rows.append((start, row))
                start = reader.line_num + 1
        else:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append((number, json.loads(line)))
                    except json.JSONDecodeError as err:
                        raise DataError(f"{path} line {number}: not a JSON object ({err.msg})") from err
    if rows and "file_name" not in rows[0][1]:
        raise DataError(f"{path}: no 'file_name' column; columns are {list(rows[0][1])}")
    return rows


def _split_of(relative: Path) -> str | None:
    return _SPLIT_ALIASES.get(relative.parts[0].lower()) if len(relative.parts) > 1 else None


def _class_of(relative: Path) -> str | None:
    """The class folder: the file's parent, unless that is the root or a split folder."""
    parts = relative.parts
    if len(parts) < 2 or (len(parts) == 2 and _split_of(relative) is not None):
        return None
    return parts[-2]


def load_media_folder(path: Path):
    """A ``DatasetDict`` with an ``image`` or ``audio`` column, ``label`` and any metadata columns, one entry per split.

    Raises:
        DataError: a file outside any class folder with no label in metadata, a metadata row naming a missing file,
            a metadata file without ``file_name``, mixed images and audio, a link loop.
    """
    from datasets import Dataset, DatasetDict, Image

    files = _walk(path)
    kind = _kind(files, path)
    suffixes = IMAGE_SUFFIXES if kind == "image" else AUDIO_SUFFIXES
    media = [f for f in files if f.suffix.lower() in suffixes]
    metadata = [f for f in files if f.name in METADATA_NAMES]
    rows = _rows_from_metadata(path, metadata, media) if metadata else _rows_from_folders(path, media)
    splits: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        splits.setdefault(row.pop("__split__"), []).append(row)
    out = {}
    for split, split_rows in splits.items():
        keys = list(dict.fromkeys(key for r in split_rows for key in r))  # metadata rows may differ in columns
        columns = {key: [r.get(key) for r in split_rows] for key in keys}
        part = Dataset.from_dict(columns)
        out[split] = part.cast_column("image", Image()) if kind == "image" else part
    return DatasetDict(out)


def _entry(path: Path, file: Path, kind: str) -> str:
    # images: absolute (the Image feature opens them from anywhere); audio: relative, decoded against data.source
    relative = os.path.relpath(file, path)
    return str(Path(path, relative).absolute()) if kind == "image" else relative


def _rows_from_folders(path: Path, media: list[Path]) -> list[dict[str, Any]]:
    kind = "image" if media[0].suffix.lower() in IMAGE_SUFFIXES else "audio"
    rows = []
    for file in media:
        relative = Path(os.path.relpath(file, path))
        label = _class_of(relative)
        if label is None:
            raise DataError(
                f"{file}: not inside a class folder; put each file in <class>/ (or <split>/<class>/), "
                "or list it in a metadata.csv with file_name and label columns"
            )
        rows.append({kind: _entry(path, file, kind), "label": label, "__split__": _split_of(relative) or "train"})
    return rows


def _rows_from_metadata(path: Path, metadata: list[Path], media: list[Path]) -> list[dict[str, Any]]:
    kind = "image" if media[0].suffix.lower() in IMAGE_SUFFIXES else "audio"
    rows, listed = [], set()
    for meta in metadata:
        folder_split = _split_of(Path(os.path.relpath(meta, path)))
        for line, record in _read_metadata(meta):
            file = meta.parent / str(record.pop("file_name"))
            if not file.is_file():
                raise DataError(f"{meta} line {line}: file_name {file.relative_to(meta.parent)} does not exist")
            listed.add(os.path.realpath(file))
            relative = Path(os.path.relpath(file, path))
            split = record.pop("split", None) or folder_split or _split_of(relative) or "train"
            if split not in _SPLIT_ALIASES.values():
                split = _SPLIT_ALIASES.get(str(split).lower(), str(split))
            label = record.pop("label", None)
            if label in (None, ""):
                label = _class_of(relative)
            rows.append({kind: _entry(path, file, kind), **record, "label": label, "__split__": split})
    unlisted = [f for f in media if os.path.realpath(f) not in listed]
    if unlisted:
        logging.getLogger("hftl").warning(
            "%s: %d %s files are in no metadata file and are left out (first: %s)", path, len(unlisted), kind, unlisted[0]
        )
    if not rows:
        raise DataError(f"{path}: the metadata files {[str(m) for m in metadata]} list no files")
    return rows
