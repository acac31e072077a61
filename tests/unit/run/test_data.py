"""Data sources, label encoding, stratified splits and subsampling."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from hftl.config import load_config
from hftl.errors import DataError
from hftl.run.data import load_splits, shots_sample, stratified_sample


def data_cfg(source, *overrides):
    return load_config(None, [f"data.source={source}", *overrides]).data


def test_stratified_sample_keeps_proportions():
    labels = np.array([0] * 600 + [1] * 300 + [2] * 100)
    idx = stratified_sample(labels, 100, seed=1)
    assert len(idx) == 100 and len(set(idx)) == 100
    assert Counter(labels[idx]) == {0: 60, 1: 30, 2: 10}
    assert np.array_equal(idx, stratified_sample(labels, 100, seed=1))  # fixed by seed
    assert not np.array_equal(idx, stratified_sample(labels, 100, seed=2))


def test_stratified_sample_rounds_to_exact_total():
    labels = np.array([0] * 7 + [1] * 7 + [2] * 7)
    idx = stratified_sample(labels, 10, seed=0)
    assert len(idx) == 10
    assert sorted(Counter(labels[idx]).values()) == [3, 3, 4]


def test_shots_per_class():
    labels = np.array([0] * 50 + [1] * 20 + [2] * 3)
    idx = shots_sample(labels, 5, seed=0)
    assert Counter(labels[idx]) == {0: 5, 1: 5, 2: 3}  # a class with fewer rows gives all it has


def test_csv_with_string_labels_is_split_and_encoded(topic_csv):
    ds, names = load_splits(data_cfg(topic_csv))
    assert names == ["business", "film", "sport"]
    assert set(ds) == {"train", "validation", "test"}
    assert sum(len(s) for s in ds.values()) == 120
    assert len(ds["test"]) == 24 and len(ds["validation"]) == 10  # 20% of all, then 10% of the rest
    for split in ds.values():
        assert split.features["label"].names == names
        assert set(Counter(split["label"]).values()) <= {len(split) // 3, len(split) // 3 + 1}  # stratified


@pytest.mark.parametrize(
    "override, expected",
    [("data.shots_per_class=4", 12), ("data.max_train_samples=30", 30), ("data.train_fraction=0.5", 43)],
)
def test_train_subsampling(topic_csv, override, expected):
    ds, _ = load_splits(data_cfg(topic_csv, override))
    assert len(ds["train"]) == expected
    counts = Counter(ds["train"]["label"])
    assert max(counts.values()) - min(counts.values()) <= 1
    full, _ = load_splits(data_cfg(topic_csv))
    assert len(ds["test"]) == len(full["test"])  # subsampling never touches the held-out splits


def test_split_files_and_json(tmp_path):
    for split, n in (("train", 12), ("test", 6)):
        rows = [{"sentence": f"row {i}", "topic": ["x", "y", "z"][i % 3]} for i in range(n)]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds, names = load_splits(data_cfg(tmp_path, "data.input_column=sentence", "data.label_column=topic"))
    assert names == ["x", "y", "z"]
    assert len(ds["test"]) == 6 and len(ds["train"]) + len(ds["validation"]) == 12


def test_missing_column_names_column_split_and_source(topic_csv):
    with pytest.raises(DataError, match=r"data\.input_column: column 'sentence' not found in split 'train'.*topics\.csv"):
        load_splits(data_cfg(topic_csv, "data.input_column=sentence"))


def test_unknown_label_names_split_row_and_value(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,pos\nb,neg\nc,pos\nd,neg\ne,pos\nf,neg\n")
    (tmp_path / "test.csv").write_text("text,label\ng,pos\nh,neutral\n")
    with pytest.raises(DataError, match=r"row 1 of split 'test' \(line 3 of .*test\.csv\): unknown label 'neutral'"):
        load_splits(data_cfg(tmp_path))


def test_declared_labels_fix_the_order_and_reject_others(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\n" + "\n".join(f"t{i},{'ab'[i % 2]}" for i in range(20)))
    ds, names = load_splits(data_cfg(tmp_path / "d.csv", "data.labels=[b, a]"))
    assert names == ["b", "a"] and ds["train"].features["label"].names == ["b", "a"]
    with pytest.raises(DataError, match="unknown label 'a'"):
        load_splits(data_cfg(tmp_path / "d.csv", "data.labels=[b, c]"))


def test_missing_local_path_and_bad_split(tmp_path, topic_csv):
    with pytest.raises(DataError, match="does not exist"):
        load_splits(data_cfg(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="split 'training' not in"):
        load_splits(data_cfg(topic_csv, "data.train_split=training"))


def test_max_eval_samples_caps_validation_and_test(topic_csv):
    ds, _ = load_splits(data_cfg(topic_csv, "data.max_eval_samples=6"))
    assert len(ds["validation"]) == 6 and len(ds["test"]) == 6
    assert sorted(Counter(ds["test"]["label"]).values()) == [2, 2, 2]
