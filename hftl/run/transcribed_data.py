"""Splits of a speech recognition data set: an audio column and a transcript column (``data.label_column``).

The same sources as classification (``run/data.py``): ``zoo:NAME``, a Hub id, a CSV / TSV / JSON / JSONL / Parquet
file or folder of ``train.*`` / ``validation.*`` / ``test.*`` (audio paths relative to the file's folder), a
``save_to_disk`` folder, or an audiofolder (audio files + ``metadata.csv`` / ``metadata.jsonl`` with a transcript
column). Missing validation / test splits are carved from train at random (seeded: ``data.split_seed``); train can be
subsampled (``max_train_samples``, ``train_fraction``). Every check runs before any model is built: a missing split
or column, an empty or missing transcript, an unreadable or empty audio file, each named with split, row and (for
table files) its line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from datasets import DatasetDict

from hftl.config import DataConfig
from hftl.errors import DataError
from hftl.run.bad_rows import BadRows
from hftl.run.data import (
    _ROW,
    _SPLIT_NAMES,
    _check_columns,
    _check_not_empty,
    _line_locator,
    _screen_inputs,
    load_source,
)

logger = logging.getLogger("hftl")


def _drop_empty_transcripts(ds: DatasetDict, cfg: DataConfig, origin: dict[str, str], bad: BadRows) -> DatasetDict:
    column, out = cfg.label_column, {}
    for split, part in ds.items():
        keep = []
        for row, (index, value) in enumerate(zip(part[_ROW], part[column], strict=True)):
            if not isinstance(value, str) or not value.strip():
                reason = "missing transcript" if value is None else f"empty or non-text transcript {value!r}"
                bad.add(origin[split], index, column, reason, "fill it in or remove the row")
                continue
            keep.append(row)
        out[split] = part if len(keep) == len(part) else part.select(keep)
    return DatasetDict(out)


def _random_rows(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(k, n)])


def load_transcribed_splits(
    cfg: DataConfig,
    extra_splits: list[str] = (),
    check_input: Callable[[Any], None] | None = None,
    skipped: list[dict[str, Any]] | None = None,
) -> DatasetDict:
    """train / validation / test (+ ``extra_splits`` by their own names) with input and transcript columns.

    Raises:
        DataError: a missing split or column, shots_per_class (classes only), or (data.on_bad_sample=error) a row
            with an empty transcript or a bad audio file, named with split and row.
    """
    if cfg.shots_per_class is not None:
        raise DataError("data.shots_per_class counts rows per class; a transcript data set has none: use max_train_samples")
    bad = BadRows(cfg.on_bad_sample, cfg.source, _line_locator(cfg), [] if skipped is None else skipped)
    raw = load_source(cfg)
    if cfg.train_split not in raw:
        raise DataError(f"data.train_split: split '{cfg.train_split}' not in {cfg.source}; splits are {list(raw)}")
    missing = [name for name in extra_splits if name not in raw]
    if missing:
        raise DataError(f"asr.extra_splits: {missing} not in {cfg.source}; splits are {list(raw)}")
    wanted = {"train": cfg.train_split, "validation": cfg.validation_split, "test": cfg.test_split}
    wanted.update({name: name for name in extra_splits})
    ds = DatasetDict({role: raw[name] for role, name in wanted.items() if name is not None and name in raw})
    origin = {role: wanted[role] if role in ds else cfg.train_split for role in wanted}
    history = {role: [f"{len(part)} rows in {cfg.source}"] for role, part in ds.items()}
    _check_columns(ds, cfg)
    ds = DatasetDict({role: part.add_column(_ROW, np.arange(len(part))) for role, part in ds.items()})
    ds = _drop_empty_transcripts(ds, cfg, origin, bad)
    for name, key in (("test", "test_fraction"), ("validation", "validation_fraction")):
        if name not in ds:
            _check_not_empty(ds, history, ["train"])
            train = ds["train"]
            held = _random_rows(len(train), max(1, round(getattr(cfg, key) * len(train))), cfg.split_seed + (name == "validation"))
            ds["train"], ds[name] = train.select(np.setdiff1d(np.arange(len(train)), held)), train.select(held)
            history[name] = [f"{len(held)} rows carved from '{cfg.train_split}' at random (data.{key}={getattr(cfg, key)})"]
            logger.info("no '%s' split: carved %d rows from '%s' at random", name, len(held), cfg.train_split)
    n_train = len(ds["train"])
    # the training subset's own seed (a study draws one per seed, as for classes); the held-out rows stay split_seed's
    subset_seed = cfg.split_seed if cfg.subset_seed is None else cfg.subset_seed
    if cfg.max_train_samples is not None:
        ds["train"] = ds["train"].select(_random_rows(n_train, cfg.max_train_samples, subset_seed))
    elif cfg.train_fraction is not None and cfg.train_fraction < 1.0:
        ds["train"] = ds["train"].select(_random_rows(n_train, max(1, round(cfg.train_fraction * n_train)), subset_seed))
    for split in ("validation", "test", *extra_splits):  # max_test_samples caps test alone, as for classes
        cap = (cfg.max_test_samples or cfg.max_eval_samples) if split == "test" else cfg.max_eval_samples
        if cap is not None:
            ds[split] = ds[split].select(_random_rows(len(ds[split]), cap, cfg.split_seed))
    if check_input is not None:
        ds = _screen_inputs(ds, cfg, check_input, origin, bad)
    bad.raise_if_any()
    _check_not_empty(ds, history, [*_SPLIT_NAMES, *extra_splits])
    return DatasetDict({k: ds[k] for k in (*_SPLIT_NAMES, *extra_splits)}).remove_columns(_ROW)
