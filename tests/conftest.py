"""Shared fixtures: a tiny BERT saved as a local folder, a small learnable text data set, a quick run config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.bench_scripts import write_tiny_configs
from tests.helpers.text_data import write_topic_csv
from tests.helpers.tiny_models import tiny_text_model


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


@pytest.fixture(scope="session")
def tiny_configs(tmp_path_factory) -> list[str]:
    """The bench scripts' --config arguments: every modality on a tiny model and a tiny data set."""
    return write_tiny_configs(tmp_path_factory.mktemp("bench"))


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


