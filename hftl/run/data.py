"""Resolve a data source into train / validation / test splits with a ClassLabel label column.

Sources: ``zoo:NAME`` (offline sets built from package registries), a Hub dataset id (``load_dataset``), or a
local file / folder (CSV, JSON, JSONL, Parquet, a ``save_to_disk`` folder, or an image folder with one sub-folder
per class). Missing validation / test splits are carved from train, stratified. Train can then be subsampled,
stratified, by count, fraction or shots per class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Audio, ClassLabel, DatasetDict, Image, load_dataset, load_from_disk

from hftl import zoo
from hftl.config import DataConfig
from hftl.errors import DataError
from hftl.run.folders import is_audio_folder, load_audio_folder

logger = logging.getLogger("hftl")

_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_SPLIT_NAMES = ("train", "validation", "test")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_ROW = "__hftl_row__"  # a row's index in its source split, carried through carving and subsampling for messages
_SKIP_HINT = "set data.on_bad_sample=skip to leave such rows out (they are listed in RUN/skipped_samples.json)"


def _is_image_folder(path: Path) -> bool:
    """A folder of class sub-folders holding images (imagefolder layout), with no train.<csv|json|...> table."""
    if any(p.suffix in _FILE_BUILDERS for p in path.glob("*.*")):
        return False
    return next((True for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES), False)


def _load_image_folder(path: Path) -> DatasetDict:
    # datasets' imagefolder builder: label = sub-folder name (ClassLabel); train/validation/test sub-folders become splits.
    try:
        return load_dataset("imagefolder", data_dir=str(path))
    except Exception as err:  # datasets raises many types for a malformed folder
        raise DataError(f"{path}: could not be read as an image folder (one sub-folder per class): {err}") from err


def _load_local(path: Path) -> DatasetDict:
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()):
        loaded = load_from_disk(str(path))
        return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
    if path.is_dir() and _is_image_folder(path):
        return _load_image_folder(path)
    if is_audio_folder(path):  # class sub-folders of audio files, read as path strings (no torchcodec)
        return load_audio_folder(path)
    if path.is_file():
        files = {"train": [str(path)]}
    else:  # a folder of train.csv / validation.csv / test.csv (or .json/.jsonl/.parquet)
        files = {}
        for split in _SPLIT_NAMES:
            found = [p for p in sorted(path.glob(f"{split}.*")) if p.suffix in _FILE_BUILDERS]
            if found:
                files[split] = [str(p) for p in found]
        if "train" not in files:
            raise DataError(f"{path}: expected a data file, a save_to_disk folder, or train.<csv|json|jsonl|parquet> inside")
    suffixes = {Path(f).suffix for fs in files.values() for f in fs}
    if len(suffixes) != 1 or next(iter(suffixes)) not in _FILE_BUILDERS:
        raise DataError(f"{path}: unsupported or mixed file types {sorted(suffixes)}; use one of {sorted(_FILE_BUILDERS)}")
    suffix = next(iter(suffixes))
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    try:
        return load_dataset(_FILE_BUILDERS[suffix], data_files=files, **kwargs)
    except Exception as err:  # datasets raises many types for a malformed file
        raise DataError(f"{path}: could not be read as {suffix}: {err}") from err


def load_source(cfg: DataConfig) -> DatasetDict:
    """The raw splits of the configured source, as stored (no label encoding yet)."""
    zoo_path = zoo.resolve(cfg.source)
    if zoo_path is not None:
        return load_from_disk(str(zoo_path))
    path = Path(cfg.source).expanduser()
    if path.exists():
        return _load_local(path)
    if cfg.source.startswith((".", "/", "~")) or cfg.source.endswith(tuple(_FILE_BUILDERS)):
        raise DataError(f"data.source: local path {cfg.source} does not exist")
    logger.info("loading %s from the Hugging Face Hub", cfg.source)
    return load_dataset(cfg.source, cfg.subset)


def _check_columns(ds: DatasetDict, cfg: DataConfig) -> None:
    for split, part in ds.items():
        for key in ("input_column", "label_column"):
            column = getattr(cfg, key)
            if column not in part.column_names:
                raise DataError(
                    f"data.{key}: column '{column}' not found in split '{split}' of {cfg.source}; "
                    f"columns are {part.column_names}"
                )


def _label_names(ds: DatasetDict, cfg: DataConfig) -> list[str]:
    feature = ds["train"].features[cfg.label_column]
    if isinstance(feature, ClassLabel):
        names = list(feature.names)
        if cfg.labels is not None and cfg.labels != names:
            raise DataError(f"data.labels {cfg.labels} disagree with the class names stored in {cfg.source}: {names}")
        return names
    if cfg.labels is not None:
        return list(cfg.labels)
    values = ds["train"].unique(cfg.label_column)
    if any(v is None for v in values):
        if cfg.on_bad_sample == "error":
            row = ds["train"][cfg.label_column].index(None)
            raise DataError(
                f"column '{cfg.label_column}' row {row} of split '{cfg.train_split}': missing label; "
                f"fill it in or remove the row, or {_SKIP_HINT}"
            )
        values = [v for v in values if v is not None]  # skipped later, in _encode_labels
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return [str(i) for i in range(int(max(values)) + 1)]
    return sorted(str(v) for v in values)


def _encode_labels(
    ds: DatasetDict, cfg: DataConfig, names: list[str], origin: dict[str, str], skipped: list[dict[str, Any]]
) -> DatasetDict:
    """Cast every split's label column to ClassLabel(names); an unknown or missing label names split, row and value.

    With data.on_bad_sample=skip such rows are left out and recorded in ``skipped`` instead.
    """
    column = cfg.label_column
    label2id = {name: i for i, name in enumerate(names)}
    out = {}
    for split, part in ds.items():
        feature = part.features[column]
        if isinstance(feature, ClassLabel):
            if list(feature.names) != names:
                raise DataError(f"split '{origin[split]}': class names {feature.names} differ from train's {names}")
            out[split] = part
            continue
        ids, keep = [], []
        for row, value in enumerate(part[column]):
            key = str(value)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and key not in label2id:
                key = names[value] if 0 <= value < len(names) else key
            if key in label2id:
                ids.append(label2id[key])
                keep.append(row)
                continue
            reason = "missing label" if value is None else f"unknown label {value!r}; known labels: {names}"
            if cfg.on_bad_sample == "error":
                advice = "add it to data.labels or fix the row" if value is not None else "fill it in or remove the row"
                raise DataError(f"column '{column}' row {row} of split '{origin[split]}': {reason}; {advice}, or {_SKIP_HINT}")
            skipped.append({"split": origin[split], "row": row, "column": column, "reason": reason})
        if len(keep) < len(part):
            part = part.select(keep)
        part = part.remove_columns(column).add_column(column, ids)
        out[split] = part.cast_column(column, ClassLabel(names=names))
    _check_every_label_has_training_rows(out["train"], cfg, names)
    return DatasetDict(out)


def _check_every_label_has_training_rows(train: Any, cfg: DataConfig, names: list[str]) -> None:
    counts = np.bincount(np.asarray(train[cfg.label_column], dtype=np.int64), minlength=len(names))
    empty = [name for name, n in zip(names, counts, strict=True) if n == 0]
    if not empty:
        return
    if cfg.labels is not None:
        raise DataError(
            f"data.labels names {empty}, but split '{cfg.train_split}' of {cfg.source} has no rows with "
            f"{'that label' if len(empty) == 1 else 'those labels'}: the model would get outputs it never learns. "
            "Remove them from data.labels, or add rows for them."
        )
    logger.warning("labels %s have no training rows in %s: the model cannot learn them", empty, cfg.source)


def _describe_input(value: Any) -> str | None:
    """What identifies a raw input in a message: its file path, else a short preview."""
    if value is None:
        return None
    if isinstance(value, dict):
        return str(value.get("path") or "<embedded bytes>")
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _undecoded(part: Any, column: str) -> Any:
    """The split with an Image / Audio column left as stored ({bytes, path}): inputs are decoded by the check."""
    feature = part.features[column]
    if isinstance(feature, (Image, Audio)) and feature.decode:
        return part.cast_column(column, type(feature)(decode=False))
    return part


def _screen_inputs(
    ds: DatasetDict,
    cfg: DataConfig,
    check_input: Callable[[Any], None],
    origin: dict[str, str],
    skipped: list[dict[str, Any]],
) -> DatasetDict:
    """Decode every input once before training; a bad one stops the run (error) or is left out (skip)."""
    column = cfg.input_column
    out = {}
    for split, part in ds.items():
        keep = []
        start = 0
        for batch in _undecoded(part, column).iter(batch_size=256):
            for offset, (row, value) in enumerate(zip(batch[_ROW], batch[column], strict=True)):
                try:
                    if value is None:
                        raise DataError("empty or missing input; fill it in or remove the row")
                    check_input(value)
                except DataError as err:
                    shown = _describe_input(value)
                    where = f"column '{column}' row {row} of split '{origin[split]}'"
                    where += "" if value is None or shown in str(err) else f" ({shown})"
                    if cfg.on_bad_sample == "error":
                        raise DataError(f"{where}: {err}. Or {_SKIP_HINT}") from err
                    skipped.append(
                        {"split": origin[split], "row": row, "column": column, "input": _describe_input(value),
                         "reason": str(err)}
                    )  # fmt: skip
                    continue
                keep.append(start + offset)
            start += len(batch[column])
        out[split] = part if len(keep) == len(part) else part.select(keep)
    return DatasetDict(out)


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of n rows drawn without replacement, keeping class proportions (largest remainder)."""
    labels = np.asarray(labels)
    n = min(n, len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts / counts.sum() * n
    take = np.floor(quota).astype(int)
    leftover = n - take.sum()
    take[np.argsort(-(quota - take), kind="stable")[:leftover]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked))


def shots_sample(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Sorted indices of `shots` rows per class (all rows of a class that has fewer, with a warning)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < shots:
            logger.warning("class %s has %d training rows, fewer than shots_per_class=%d: using all", c, len(rows), shots)
        picked.append(rng.permutation(rows)[:shots])
    return np.sort(np.concatenate(picked))


def _carve(ds: DatasetDict, source: str, name: str, fraction: float, column: str, seed: int) -> DatasetDict:
    train = ds[source]
    labels = np.asarray(train[column])
    held = stratified_sample(labels, max(1, round(fraction * len(train))), seed)
    rest = np.setdiff1d(np.arange(len(train)), held)
    logger.info("no '%s' split: carved %d rows (%.0f%%) from '%s', stratified", name, len(held), 100 * fraction, source)
    return DatasetDict({**ds, source: train.select(rest), name: train.select(held)})


def load_splits(
    cfg: DataConfig,
    check_input: Callable[[Any], None] | None = None,
    skipped: list[dict[str, Any]] | None = None,
) -> tuple[DatasetDict, list[str]]:
    """train / validation / test splits with a ClassLabel label column, subsampled as configured, and the class names.

    Args:
        cfg: The data section of the run config.
        check_input: Decodes one raw input, raising DataError if it cannot be used (``Modality.check_input``);
            called on every row that is kept, once, before training.
        skipped: Rows left out under ``data.on_bad_sample=skip`` are appended here
            (``{split, row, column, input, reason}``, row = index in the source split).

    Raises:
        DataError: a missing split or column, or (data.on_bad_sample=error) a bad row, named with split and row.
    """
    skipped = [] if skipped is None else skipped
    raw = load_source(cfg)
    if cfg.train_split not in raw:
        raise DataError(f"data.train_split: split '{cfg.train_split}' not in {cfg.source}; splits are {list(raw)}")
    wanted = {"train": cfg.train_split, "validation": cfg.validation_split, "test": cfg.test_split}
    ds = DatasetDict({role: raw[name] for role, name in wanted.items() if name is not None and name in raw})
    origin = {role: wanted[role] if role in ds else cfg.train_split for role in _SPLIT_NAMES}  # carved come from train
    _check_columns(ds, cfg)
    ds = DatasetDict({role: part.add_column(_ROW, np.arange(len(part))) for role, part in ds.items()})
    names = _label_names(ds, cfg)
    ds = _encode_labels(ds, cfg, names, origin, skipped)
    if "test" not in ds:
        ds = _carve(ds, "train", "test", cfg.test_fraction, cfg.label_column, cfg.split_seed)
    if "validation" not in ds:
        ds = _carve(ds, "train", "validation", cfg.validation_fraction, cfg.label_column, cfg.split_seed + 1)
    ds = DatasetDict({k: ds[k] for k in _SPLIT_NAMES})

    train_labels = np.asarray(ds["train"][cfg.label_column])
    if cfg.shots_per_class is not None:
        ds["train"] = ds["train"].select(shots_sample(train_labels, cfg.shots_per_class, cfg.split_seed))
    elif cfg.max_train_samples is not None:
        ds["train"] = ds["train"].select(stratified_sample(train_labels, cfg.max_train_samples, cfg.split_seed))
    elif cfg.train_fraction is not None and cfg.train_fraction < 1.0:
        n = max(len(names), round(cfg.train_fraction * len(train_labels)))
        ds["train"] = ds["train"].select(stratified_sample(train_labels, n, cfg.split_seed))
    if cfg.max_eval_samples is not None:
        for split in ("validation", "test"):
            labels = np.asarray(ds[split][cfg.label_column])
            ds[split] = ds[split].select(stratified_sample(labels, cfg.max_eval_samples, cfg.split_seed))
    if check_input is not None:
        ds = _screen_inputs(ds, cfg, check_input, origin, skipped)
    if skipped:
        logger.warning("data.on_bad_sample=skip: left out %d rows (first: %s)", len(skipped), skipped[0])
    return ds.remove_columns(_ROW), names
