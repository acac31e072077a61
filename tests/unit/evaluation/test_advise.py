"""`hftl advise`: two tiny models ranked on a tiny CSV, and the method picked from a small results.csv written here."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hftl.cli import main
from hftl.errors import DataError
from hftl.evaluation.advise import recommend_from_grid, rule_of_thumb
from tests.helpers.tiny_models import tiny_text_model

COLUMNS = ["modality", "dataset", "backbone", "method", "shots_per_class", "train_size", "seed", "test_accuracy"]


def write_grid(folder: Path, rows: list[tuple]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "results.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return folder


@pytest.fixture
def grid(tmp_path) -> Path:
    # text at 5 / 20 / all (bbc: 5 classes, 1557 rows: 311 per class); vision only at 5.
    rows = []
    for seed, noise in enumerate((0.0, 0.01, -0.01)):
        rows += [
            ("text", "zoo:bbc-news", "zoo:minilm-l6", "linear_probe", "5", "25", seed, 0.70 + noise),
            ("text", "zoo:bbc-news", "zoo:minilm-l6", "lora", "5", "25", seed, 0.60 + noise),
            ("text", "zoo:bbc-news", "zoo:minilm-l6", "linear_probe", "20", "100", seed, 0.80 + noise),
            ("text", "zoo:bbc-news", "zoo:minilm-l6", "lora", "20", "100", seed, 0.90 + noise),
            ("text", "zoo:bbc-news", "zoo:minilm-l6", "full", "all", "1557", seed, 0.97 + noise),
            ("text", "zoo:bbc-news", "zoo:minilm-l6", "lora", "all", "1557", seed, 0.96 + noise),
            ("vision", "zoo:fashion-mnist", "zoo:dinov2-small", "full", "5", "50", seed, 0.99),
        ]
    return write_grid(tmp_path / "grid", rows)


@pytest.mark.parametrize("shots,method", [(4, "linear_probe"), (7, "linear_probe"), (15, "lora"), (60, "lora"), (200, "full"), (5000, "full")])
def test_grid_picks_the_best_method_at_the_nearest_size(grid, shots, method):
    advice = recommend_from_grid(grid, "text", shots)
    assert advice.method == method
    assert advice.table[0]["method"] == method and advice.table[0]["runs"] == 3
    assert "measured grid" in advice.reason


def test_grid_reports_mean_and_std_over_seeds(grid):
    advice = recommend_from_grid(grid, "text", 20)
    lora = next(t for t in advice.table if t["method"] == "lora")
    assert lora["mean"] == pytest.approx(0.90) and lora["std"] == pytest.approx((2 / 3 * 0.01**2) ** 0.5)
    assert "20 examples per class" in advice.reason


def test_grid_without_the_modality_or_without_a_file(grid, tmp_path):
    assert recommend_from_grid(grid, "audio", 10) is None
    with pytest.raises(DataError, match="results.csv"):
        recommend_from_grid(tmp_path / "nowhere", "text", 10)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.csv").write_text("modality,method\ntext,lora\n")
    with pytest.raises(DataError, match="missing columns"):
        recommend_from_grid(bad, "text", 10)


def test_rule_of_thumb():
    assert [rule_of_thumb(s).method for s in (1, 9.5, 10, 99, 100, 1000)] == [
        "linear_probe", "linear_probe", "lora", "lora", "full", "full",
    ]  # fmt: skip


def test_advise_ranks_two_tiny_models_and_uses_the_grid(tiny_bert, topic_csv, grid, tmp_path, capsys):
    other = tiny_text_model(tmp_path / "other_bert", num_labels=2)
    code = main([
        "advise", str(topic_csv), "--models", str(tiny_bert), str(other), "--layers", "--grid", str(grid),
        "text.max_length=16", "data.shots_per_class=12",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    table = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(table) == 4  # 2 models x layers 1 and 2
    logmes = [float(line.split()[3]) for line in table]
    assert logmes == sorted(logmes, reverse=True)
    assert "12 per class" in out
    # 12 shots: nearest measured text size is 20 (log scale), where lora leads
    assert "recommended method: lora" in out and "measured grid" in out


def test_advise_without_grid_states_the_rule(tiny_bert, topic_csv, capsys):
    assert main(["advise", str(topic_csv), "--models", str(tiny_bert), "text.max_length=16", "data.shots_per_class=3"]) == 0
    out = capsys.readouterr().out
    assert "recommended method: linear_probe" in out and "rule of thumb (no measured grid)" in out


def test_advise_needs_a_modality_it_can_tell(topic_csv, tmp_path, capsys):
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text('{"model_type": "gpt2"}')  # a model type no modality lists
    assert main(["advise", str(topic_csv), "--models", str(tmp_path / "gpt")]) == 2
    assert "pass --modality" in capsys.readouterr().err
    assert main(["advise", str(topic_csv), "--models", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
