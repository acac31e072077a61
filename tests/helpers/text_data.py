"""A small learnable text data set: topic words per class, written as a CSV (text,label)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

# Words of the tiny model's vocabulary; each class draws most of its words from its own topic.
TOPICS = {
    "sport": ["sport", "team", "game", "win", "lose", "play"],
    "business": ["money", "market", "news", "big", "small", "new"],
    "film": ["movie", "film", "plot", "actor", "music", "song"],
}
FILLER = ["the", "a", "is", "was", "and", "of", "to", "in", "very", "this", "that", "it"]


def write_topic_csv(path: Path, rows_per_class: int = 40, seed: int = 0) -> Path:
    """A CSV (text,label) where the label is learnable from the words: a stand-in for a real topic task."""
    rng = random.Random(seed)
    rows = []
    for label, words in TOPICS.items():
        for _ in range(rows_per_class):
            tokens = rng.choices(words, k=5) + rng.choices(FILLER, k=4)
            rng.shuffle(tokens)
            rows.append({"text": " ".join(tokens), "label": label})
    rng.shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path
