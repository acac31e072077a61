"""`hftl advise --grid`: the regret of trusting LogME's top pick, measured from a results.csv written here."""

from __future__ import annotations

import csv

from hftl.evaluation.advise import expected_regret, recommend_from_grid

COLUMNS = ["modality", "dataset", "backbone", "method", "shots_per_class", "train_size", "seed", "test_accuracy",
           "logme", "n_le_d"]  # fmt: skip


def test_regret_of_the_top_logme_pick_from_a_grid(tmp_path):
    rows = []
    for seed in (0, 1):
        for backbone, score, acc in (("a", 3.0, 0.8), ("b", 2.0, 0.9), ("c", 1.0, 0.5)):
            rows.append(["text", "news", backbone, "full", "16", "80", seed, acc, score, "False"])
            rows.append(["text", "news", backbone, "scratch", "16", "80", seed, 0.3, score, "False"])
    with (tmp_path / "results.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    advice = recommend_from_grid(tmp_path, "text", 16)
    # LogME puts a (0.8) first, b (0.9) is best: 10 points lost; weighted tau of a top swap over 3 = 2/11 = 0.18
    assert advice.regret.startswith("expected regret of trusting LogME's top pick, measured on 1 text data set/size "
                                    "group(s) against full accuracy: 10.0 points on average (worst 10.0: news at 16/class)")  # fmt: skip
    assert "weighted tau 0.18" in advice.regret
    with (tmp_path / "results.csv").open() as f:
        read = list(csv.DictReader(f))
    assert expected_regret(read, "vision") == ""  # nothing measured there
    assert expected_regret([r for r in read if r["backbone"] != "c"], "text") == ""  # two candidates rank nothing
