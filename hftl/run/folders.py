"""Read an "audiofolder": one sub-folder per class holding audio files, optionally under train/validation/test.

datasets' own ``audiofolder`` builder yields its ``Audio()`` feature, which needs torchcodec; this one yields plain
path strings (relative to the folder, so it can move) that the audio modality decodes with soundfile.
"""

from __future__ import annotations

from pathlib import Path

from hftl.errors import DataError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}
_SPLITS = ("train", "validation", "test")


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def is_audio_folder(path: Path) -> bool:
    """A folder whose class sub-folders hold audio files (and no data table such as train.csv)."""
    if not path.is_dir() or any(p.suffix in {".csv", ".tsv", ".json", ".jsonl", ".parquet"} for p in path.glob("*.*")):
        return False
    return bool(_audio_files(path))


def load_audio_folder(path: Path):
    """A ``DatasetDict`` with columns ``audio`` (path relative to ``path``) and ``label`` (the class folder's name).

    Raises:
        DataError: an audio file is not inside a class sub-folder.
    """
    from datasets import Dataset, DatasetDict

    roots = {s: path / s for s in _SPLITS if (path / s).is_dir()} or {"train": path}
    out = {}
    for split, root in roots.items():
        rows: dict[str, list[str]] = {"audio": [], "label": []}
        for file in _audio_files(root):
            parts = file.relative_to(root).parts
            if len(parts) != 2:
                raise DataError(f"{file}: expected {root}/<class>/<file>; audio files must sit in one folder per class")
            rows["audio"].append(str(file.relative_to(path)))
            rows["label"].append(parts[0])
        if not rows["audio"]:
            raise DataError(f"{root}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in class sub-folders")
        out[split] = Dataset.from_dict(rows)
    return DatasetDict(out)
