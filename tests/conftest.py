"""Shared fixtures: a tiny BERT saved as a local folder, a small learnable text data set, a quick run config."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from tests.tiny_models import tiny_text_model

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


@pytest.fixture(scope="session")
def real_home() -> Path:
    """The one HFTL_HOME of the whole suite: $HFTL_HOME if set, else the user's cache (~/.cache/hftl), the one
    `make demo` fills. Every test that needs real zoo entries prepares them there, once."""
    from hftl import zoo

    return zoo.hftl_home()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return tiny_text_model(tmp_path_factory.mktemp("tiny_bert"), num_labels=3)


@pytest.fixture(scope="session")
def topic_csv(tmp_path_factory) -> Path:
    return write_topic_csv(tmp_path_factory.mktemp("data") / "topics.csv")


@pytest.fixture
def quick_overrides(tiny_bert, topic_csv, tmp_path) -> list[str]:
    """A complete, fast run on the tiny model: a few seconds on 2 cores."""
    return [
        f"model.source={tiny_bert}",
        f"data.source={topic_csv}",
        "text.max_length=16",
        "training.epochs=3",
        "training.batch_size=16",
        "training.learning_rate=3e-3",
        "training.warmup_ratio=0.0",
        "training.log_every_steps=2",
        "evaluation.batch_size=32",
        f"output.dir={tmp_path / 'run'}",
    ]


def torch_labels(run_dir: Path, inputs: list) -> list[str]:
    """What the run's PyTorch model (RUN/model) predicts for raw inputs, with the run's own preprocessing."""
    import torch

    from hftl.config import load_config
    from hftl.modalities import get_modality

    cfg = load_config(run_dir / "config.yaml")
    modality = get_modality(cfg.modality)
    processor = modality.load_processor(str(run_dir / "model"), cfg)
    model = modality.auto_model().from_pretrained(run_dir / "model").eval()
    features = modality.encode(processor, cfg, inputs)
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in features.items()}).logits
    return [model.config.id2label[int(i)] for i in logits.argmax(-1)]
