"""Each seed of a study draws its own training subset (stratified, deterministic); validation and test never move."""

from __future__ import annotations

from collections import Counter

import pytest

from hftl.config import DataConfig
from hftl.run.data import load_splits
from hftl.run.study import subset_digest


def _draw(topic_csv, subset_seed, **extra) -> tuple[dict[str, list[str]], list]:
    ids: dict[str, list[str]] = {}
    cfg = DataConfig(source=str(topic_csv), shots_per_class=4, subset_seed=subset_seed, **extra)
    splits, _ = load_splits(cfg, row_ids=ids)
    return ids, splits


def test_different_seeds_draw_different_subsets_and_the_same_seed_the_same(topic_csv):
    first, splits = _draw(topic_csv, 0)
    again, _ = _draw(topic_csv, 0)
    other, _ = _draw(topic_csv, 1)
    assert first["train"] == again["train"]
    assert subset_digest(first["train"]) == subset_digest(again["train"])
    assert set(first["train"]) != set(other["train"])
    assert subset_digest(first["train"]) != subset_digest(other["train"])
    # stratified: 4 rows of each of the 3 classes, whatever the seed
    assert sorted(Counter(splits["train"]["label"]).values()) == [4, 4, 4]
    # the evaluation rows are the split seed's, the same for every subset seed
    assert first["validation"] == other["validation"] and first["test"] == other["test"]
    # and never overlap the training subset (validation is carved from train, before the subset is drawn)
    assert not set(first["train"]) & (set(first["validation"]) | set(first["test"]))


def test_without_a_subset_seed_the_split_seed_draws(topic_csv):
    by_split_seed, _ = _draw(topic_csv, None, split_seed=7)
    by_subset_seed, _ = _draw(topic_csv, 7, split_seed=7)
    assert by_split_seed["train"] == by_subset_seed["train"]


def test_test_rows_have_their_own_cap(topic_csv):
    ids, splits = _draw(topic_csv, 0, max_eval_samples=6, max_test_samples=12)
    assert len(splits["validation"]) == 6 and len(splits["test"]) == 12
    assert len(ids["test"]) == 12


def test_digest_ignores_order():
    assert subset_digest(["train:3", "train:1"]) == subset_digest(["train:1", "train:3"])
    assert len(subset_digest(["train:1"])) == 16


def test_a_negative_test_cap_is_refused():
    from hftl.errors import ConfigError

    with pytest.raises(ConfigError, match="max_test_samples"):
        DataConfig(max_test_samples=0)
