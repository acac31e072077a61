"""Zoo data set ``fortunes``: short texts (quotes, jokes, aphorisms) in 8 topics, from Debian's ``fortunes`` package.

A held-out text task for the forgetting probe of text backbones: a different genre and label set from BBC News
(the only other offline text set), real human-written text, and small. fortune-mod files hold one text per
``%``-separated record, one file per topic; 140 texts of each of 8 topical files are kept (balanced, seeded),
and split stratified 70/10/20.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.fetch import extract_deb, fetch_deb
from hftl.zoo.splits import save_splits, train_validation_test

PACKAGE, VERSION = "fortunes", "1:1.99.1-7.3"
SHA256 = "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5"
DATA_DIR = "usr/share/games/fortunes"
# Topical files with at least 140 records (the others are mixed bags: 'fortunes', 'miscellaneous', 'people').
TOPICS = ("computers", "food", "law", "love", "politics", "science", "sports", "startrek")
PER_TOPIC = 140
SEED, TEST_SIZE, VALIDATION_SIZE = 42, 0.2, 0.1
_OVERSTRIKE = re.compile(".\x08")  # old terminals' bold/underline: 'x<BS>x'


def read_topic(path: Path) -> list[str]:
    """The non-empty records of one fortune file, overstrikes removed, whitespace kept."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    records = [_OVERSTRIKE.sub("", r).strip("\n") for r in re.split(r"^%\n", text, flags=re.MULTILINE)]
    return [r.rstrip() for r in records if r.strip()]


def build(dest: Path) -> dict[str, Any]:
    """Write a balanced, stratified 70/10/20 train/validation/test ``DatasetDict`` into ``dest``."""
    from datasets import ClassLabel, Dataset, Features, Value

    deb = fetch_deb(PACKAGE, VERSION, SHA256)
    texts, labels = [], []
    with tempfile.TemporaryDirectory(prefix="hftl-fortunes-") as tmp:
        root = extract_deb(deb, Path(tmp)) / DATA_DIR
        rng = np.random.default_rng(SEED)
        for label, topic in enumerate(TOPICS):
            records = read_topic(root / topic) if (root / topic).is_file() else []
            if len(records) < PER_TOPIC:
                raise ZooError(f"fortunes: {DATA_DIR}/{topic} has {len(records)} records, expected >= {PER_TOPIC}")
            keep = np.sort(rng.permutation(len(records))[:PER_TOPIC])
            texts += [records[i] for i in keep]
            labels += [label] * PER_TOPIC
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(TOPICS))})
    full = Dataset.from_dict({"text": texts, "label": labels}, features=features)
    splits = train_validation_test(full, TEST_SIZE, VALIDATION_SIZE, SEED)
    sizes = save_splits(splits, dest, "fortunes")
    return {"deb": deb.name, "splits": sizes, "labels": list(TOPICS), "per_topic": PER_TOPIC}


register(
    ZooEntry(
        name="fortunes",
        kind="dataset",
        modality="text",
        description=f"fortune-mod texts in {len(TOPICS)} topics ({', '.join(TOPICS)}), {PER_TOPIC} each, stratified 70/10/20",
        source=f"Debian {PACKAGE}={VERSION} (/{DATA_DIR}/)",
        license="BSD (fortune-mod, see the package's copyright file); texts of many authors, redistributed in Debian main",
        build=build,
    )
)
