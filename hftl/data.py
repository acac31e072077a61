"""Resolve a data source into train / validation / test splits with a ClassLabel label column.

Sources: ``zoo:NAME`` (offline sets built from package registries), a Hub dataset id (``load_dataset``), or a
local file / folder (CSV, JSON, JSONL, Parquet, a ``save_to_disk`` folder, or an image folder with one sub-folder
per class). Missing validation / test splits are carved from train, stratified. Train can then be subsampled,
stratified, by count, fraction or shots per class.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from datasets import ClassLabel, DatasetDict, load_dataset, load_from_disk

from hftl import zoo
from hftl.audio_folder import is_audio_folder, load_audio_folder
from hftl.config import DataConfig
from hftl.errors import DataError

logger = logging.getLogger("hftl")

_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_SPLIT_NAMES = ("train", "validation", "test")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


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
    feature = ds[cfg.train_split].features[cfg.label_column]
    if isinstance(feature, ClassLabel):
        names = list(feature.names)
        if cfg.labels is not None and cfg.labels != names:
            raise DataError(f"data.labels {cfg.labels} disagree with the class names stored in {cfg.source}: {names}")
        return names
    if cfg.labels is not None:
        return list(cfg.labels)
    values = ds[cfg.train_split].unique(cfg.label_column)
    if any(v is None for v in values):
        row = ds[cfg.train_split][cfg.label_column].index(None)
        raise DataError(f"column '{cfg.label_column}' row {row} of split '{cfg.train_split}': missing label")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return [str(i) for i in range(int(max(values)) + 1)]
    return sorted(str(v) for v in values)


def _encode_labels(ds: DatasetDict, cfg: DataConfig, names: list[str]) -> DatasetDict:
    """Cast every split's label column to ClassLabel(names); an unknown label names split, row and value."""
    column = cfg.label_column
    label2id = {name: i for i, name in enumerate(names)}
    out = {}
    for split, part in ds.items():
        feature = part.features[column]
        if isinstance(feature, ClassLabel):
            if list(feature.names) != names:
                raise DataError(f"split '{split}': class names {feature.names} differ from train's {names}")
            out[split] = part
            continue
        ids = []
        for row, value in enumerate(part[column]):
            key = str(value)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and key not in label2id:
                key = names[value] if 0 <= value < len(names) else key
            if key not in label2id:
                raise DataError(
                    f"column '{column}' row {row} of split '{split}': unknown label {value!r}; known labels: {names}"
                )
            ids.append(label2id[key])
        part = part.remove_columns(column).add_column(column, ids)
        out[split] = part.cast_column(column, ClassLabel(names=names))
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


def load_splits(cfg: DataConfig) -> tuple[DatasetDict, list[str]]:
    """train / validation / test splits with a ClassLabel label column, subsampled as configured, and the class names."""
    raw = load_source(cfg)
    if cfg.train_split not in raw:
        raise DataError(f"data.train_split: split '{cfg.train_split}' not in {cfg.source}; splits are {list(raw)}")
    wanted = {"train": cfg.train_split, "validation": cfg.validation_split, "test": cfg.test_split}
    ds = DatasetDict({role: raw[name] for role, name in wanted.items() if name is not None and name in raw})
    _check_columns(ds, cfg)
    names = _label_names(ds, cfg)
    ds = _encode_labels(ds, cfg, names)
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
    return ds, names
