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
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Image, load_dataset, load_from_disk

from hftl import zoo
from hftl.config import DataConfig
from hftl.errors import DataError
from hftl.run.bad_rows import BadRows, LineLocator
from hftl.run.folders import is_media_folder, load_media_folder
from hftl.run.text_files import check_encoding

logger = logging.getLogger("hftl")

_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_SPLIT_NAMES = ("train", "validation", "test")
_ROW = "__hftl_row__"  # a row's index in its source split, carried through carving and subsampling for messages


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists())


def table_files(path: Path) -> dict[str, list[Path]]:
    """The table files of a local source per split: the file itself (train), or train.* / validation.* / test.*."""
    if path.is_file():
        return {"train": [path]}
    files = {}
    for split in _SPLIT_NAMES:
        found = [p for p in sorted(path.glob(f"{split}.*")) if p.suffix in _FILE_BUILDERS]
        if found:
            files[split] = found
    if "train" not in files:
        raise DataError(
            f"{path}: expected a data file, a save_to_disk folder, a folder of images or audio files (class folders "
            "or a metadata.csv / metadata.jsonl), or train.<csv|json|jsonl|parquet> inside"
        )
    return files


def _load_local(path: Path, encoding: str) -> DatasetDict:
    if _is_saved_dataset(path):
        loaded = load_from_disk(str(path))
        return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
    if is_media_folder(path):  # imagefolder / audiofolder layouts, metadata files, linked class folders
        return load_media_folder(path)
    files = table_files(path)
    suffixes = {f.suffix for fs in files.values() for f in fs}
    if len(suffixes) != 1 or next(iter(suffixes)) not in _FILE_BUILDERS:
        raise DataError(f"{path}: unsupported or mixed file types {sorted(suffixes)}; use one of {sorted(_FILE_BUILDERS)}")
    suffix = next(iter(suffixes))
    kwargs: dict[str, Any] = {"delimiter": "\t"} if suffix == ".tsv" else {}
    if suffix != ".parquet":  # text formats: a wrong encoding is named here, with its byte and line
        for file in (f for fs in files.values() for f in fs):
            check_encoding(file, encoding)
        kwargs["encoding"] = encoding
    try:
        return load_dataset(_FILE_BUILDERS[suffix], data_files={k: [str(f) for f in v] for k, v in files.items()}, **kwargs)
    except Exception as err:  # datasets raises many types for a malformed file; the cause is often a level down
        cause = err.__cause__ or err.__context__
        detail = f"{err} ({type(cause).__name__}: {cause})" if cause is not None and str(cause) not in str(err) else err
        raise DataError(f"{path}: could not be read as {suffix}: {detail}") from err


def _line_locator(cfg: DataConfig) -> LineLocator | None:
    """Editor lines of the source's records, for messages about bad rows (local table files only)."""
    path = Path(cfg.source).expanduser()
    if zoo.resolve(cfg.source) is not None or not path.exists() or _is_saved_dataset(path) or is_media_folder(path):
        return None
    return LineLocator(table_files(path), cfg.encoding)


def load_source(cfg: DataConfig) -> DatasetDict:
    """The raw splits of the configured source, as stored (no label encoding yet)."""
    zoo_path = zoo.resolve(cfg.source)
    if zoo_path is not None:
        return load_from_disk(str(zoo_path))
    path = Path(cfg.source).expanduser()
    if path.exists():
        return _load_local(path, cfg.encoding)
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
    values = [v for v in ds["train"].unique(cfg.label_column) if v is not None]  # missing: bad rows, in _encode_labels
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return [str(i) for i in range(int(max(values)) + 1)]
    return sorted(str(v) for v in values)


def _encode_labels(
    ds: DatasetDict, cfg: DataConfig, names: list[str], origin: dict[str, str], bad: BadRows,
    check_training_rows: bool = True,
) -> DatasetDict:
    """Cast every split's label column to ClassLabel(names); rows with an unknown or missing label go to ``bad``."""
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
            advice = "add it to data.labels or fix the row" if value is not None else "fill it in or remove the row"
            bad.add(origin[split], row, column, reason, advice)
        if len(keep) < len(part):
            part = part.select(keep)
        part = part.remove_columns(column).add_column(column, ids)
        out[split] = part.cast_column(column, ClassLabel(names=names))
    if check_training_rows and not bad.errors:  # with bad rows to report, a label's missing rows may be among them
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
    bad: BadRows,
) -> DatasetDict:
    """Decode every input once before training; a bad one goes to ``bad`` (and is left out)."""
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
                    bad.add(origin[split], row, column, str(err), shown=_describe_input(value))
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
    row_ids: dict[str, list[str]] | None = None,
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
    bad = BadRows(cfg.on_bad_sample, cfg.source, _line_locator(cfg), [] if skipped is None else skipped)
    raw = load_source(cfg)
    if cfg.train_split not in raw:
        raise DataError(f"data.train_split: split '{cfg.train_split}' not in {cfg.source}; splits are {list(raw)}")
    wanted = {"train": cfg.train_split, "validation": cfg.validation_split, "test": cfg.test_split}
    ds = DatasetDict({role: raw[name] for role, name in wanted.items() if name is not None and name in raw})
    origin = {role: wanted[role] if role in ds else cfg.train_split for role in _SPLIT_NAMES}  # carved come from train
    history = {role: [f"{len(part)} rows in {cfg.source}"] for role, part in ds.items()}  # for an empty split's error
    _check_columns(ds, cfg)
    ds = DatasetDict({role: part.add_column(_ROW, np.arange(len(part))) for role, part in ds.items()})
    names = _label_names(ds, cfg)
    before = {k: len(v) for k, v in ds.items()}
    ds = _encode_labels(ds, cfg, names, origin, bad)
    _note_left_out(history, before, ds, "with a bad label")
    for name, key in (("test", "test_fraction"), ("validation", "validation_fraction")):
        if name not in ds:
            _check_not_empty(ds, history, ["train"])
            ds = _carve(ds, "train", name, getattr(cfg, key), cfg.label_column, cfg.split_seed + (name == "validation"))
            history[name] = [f"{len(ds[name])} rows carved from '{cfg.train_split}' (data.{key}={getattr(cfg, key)})"]
    ds = DatasetDict({k: ds[k] for k in _SPLIT_NAMES})

    before = {k: len(v) for k, v in ds.items()}
    train_labels = np.asarray(ds["train"][cfg.label_column])
    # The training subset has its own seed (a study draws one per seed); validation and test stay the split seed's,
    # so every run of a data set is selected and scored on the same rows.
    subset_seed = cfg.split_seed if cfg.subset_seed is None else cfg.subset_seed
    if cfg.shots_per_class is not None:
        ds["train"] = ds["train"].select(shots_sample(train_labels, cfg.shots_per_class, subset_seed))
    elif cfg.max_train_samples is not None:
        ds["train"] = ds["train"].select(stratified_sample(train_labels, cfg.max_train_samples, subset_seed))
    elif cfg.train_fraction is not None and cfg.train_fraction < 1.0:
        n = max(len(names), round(cfg.train_fraction * len(train_labels)))
        ds["train"] = ds["train"].select(stratified_sample(train_labels, n, subset_seed))
    caps = {"validation": cfg.max_eval_samples, "test": cfg.max_test_samples or cfg.max_eval_samples}
    for split, cap in caps.items():
        if cap is not None:
            labels = np.asarray(ds[split][cfg.label_column])
            ds[split] = ds[split].select(stratified_sample(labels, cap, cfg.split_seed))
    for role, part in ds.items():
        if len(part) != before[role]:
            history[role].append(f"subsampled to {len(part)} (data.shots_per_class / max_*_samples / train_fraction)")
    if check_input is not None:
        before = {k: len(v) for k, v in ds.items()}
        ds = _screen_inputs(ds, cfg, check_input, origin, bad)
        _note_left_out(history, before, ds, "with a bad input")
    bad.raise_if_any()
    _check_not_empty(ds, history, list(_SPLIT_NAMES))
    if bad.skipped:
        logger.warning("data.on_bad_sample=skip: left out %d rows (first: %s)", len(bad.skipped), bad.skipped[0])
    if row_ids is not None:
        row_ids.update({role: [f"{origin[role]}:{i}" for i in part[_ROW]] for role, part in ds.items()})
    return ds.remove_columns(_ROW), names


def _note_left_out(history: dict[str, list[str]], before: dict[str, int], ds: DatasetDict, why: str) -> None:
    for role, part in ds.items():
        if len(part) < before[role]:
            history[role].append(f"{before[role] - len(part)} {why} left out (data.on_bad_sample=skip)")


def _check_not_empty(ds: DatasetDict, history: dict[str, list[str]], roles: list[str]) -> None:
    """A split with no rows left is an error naming it and how it got empty, before any model is built."""
    for role in roles:
        if len(ds[role]) == 0:
            raise DataError(
                f"split '{role}' has no rows: {'; '.join(history[role])}. Add data, fix the bad rows "
                "(RUN/skipped_samples.json lists them), or change the data settings named here"
            )


def load_labelled_split(
    cfg: DataConfig,
    names: list[str],
    split: str | None = None,
    check_input: Callable[[Any], None] | None = None,
    skipped: list[dict[str, Any]] | None = None,
) -> tuple[Dataset, str]:
    """One split of a source, its labels encoded against a trained model's ``names`` (``hftl evaluate``).

    A subset of the model's classes is fine; a label the model does not know is an error naming every such label.
    ``split`` defaults to the source's test split, else its train split (a plain file or folder: all of it).

    Returns:
        The split (input column + ClassLabel(names) label column) and the split's name.

    Raises:
        DataError: a missing split or column, labels unknown to the model, or bad rows (data.on_bad_sample=error).
    """
    hint = "set data.on_bad_sample=skip to leave such rows out (evaluation.json lists them)"
    bad = BadRows(cfg.on_bad_sample, cfg.source, _line_locator(cfg), [] if skipped is None else skipped, hint)
    raw = load_source(cfg)
    split = split or ("test" if "test" in raw else cfg.train_split if cfg.train_split in raw else next(iter(raw)))
    if split not in raw:
        raise DataError(f"split '{split}' not in {cfg.source}; splits are {list(raw)}")
    ds = DatasetDict({split: raw[split]})
    _check_columns(ds, cfg)
    feature = ds[split].features[cfg.label_column]
    if isinstance(feature, ClassLabel):  # compare by name: the source's ids need not be the model's
        ds = DatasetDict({split: _names_column(ds[split], cfg.label_column, feature.names)})
    values = [v for v in ds[split].unique(cfg.label_column) if v is not None]
    is_id = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < len(names)  # noqa: E731
    unknown = sorted({str(v) for v in values if str(v) not in names and not is_id(v)})
    if unknown:
        raise DataError(
            f"column '{cfg.label_column}' of {cfg.source} (split '{split}') has labels the model was not trained on: "
            f"{unknown}; the model knows {names}. Map or remove those rows (a subset of the model's labels is fine)"
        )
    ds = DatasetDict({split: ds[split].add_column(_ROW, np.arange(len(ds[split])))})
    ds = _encode_labels(ds, cfg, names, {split: split}, bad, check_training_rows=False)
    if check_input is not None:
        ds = _screen_inputs(ds, cfg, check_input, {split: split}, bad)
    bad.raise_if_any()
    if len(ds[split]) == 0:
        raise DataError(f"split '{split}' of {cfg.source} has no usable rows (see the rows left out)")
    return ds[split].remove_columns(_ROW), split


def _names_column(part: Dataset, column: str, names: list[str]) -> Dataset:
    """A ClassLabel column as its names (strings), so it can be matched against another label set."""
    values = [None if v is None or v < 0 else names[v] for v in part[column]]
    return part.remove_columns(column).add_column(column, values)
