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


def test_regret_judges_the_n_above_d_groups_like_the_logme_verdict(tmp_path):
    """A grid with a size scored at N <= D (LogME prior-dominated) and one at N > D: advise reports the regret of the
    N > D group only, as the study's LogME verdict judges it, and says the other was set aside."""
    rows = []
    for seed in (0, 1):
        # 4/class, N <= D: LogME's top pick (a) is the worst: 40 points lost
        for backbone, score, acc in (("a", 3.0, 0.5), ("b", 2.0, 0.9), ("c", 1.0, 0.6)):
            rows.append(["text", "news", backbone, "full", "4", "20", seed, acc, score, "True"])
        # 100/class, N > D: its top pick (b) is the best: no regret
        for backbone, score, acc in (("a", 1.0, 0.7), ("b", 3.0, 0.95), ("c", 2.0, 0.8)):
            rows.append(["text", "news", backbone, "full", "100", "500", seed, acc, score, "False"])
    read = [dict(zip(COLUMNS, map(str, r), strict=True)) for r in rows]
    said = expected_regret(read, "text")
    assert said.startswith("expected regret of trusting LogME's top pick, measured on 1 text data set/size group(s) "
                           "against full accuracy: 0.0 points on average (worst 0.0: news at 100/class)")  # fmt: skip
    assert "weighted tau 1.00" in said and "1 N <= D group(s) set aside" in said
    # without an N > D group the N <= D ones are judged, flagged as such
    small_only = expected_regret([r for r in read if r["shots_per_class"] == "4"], "text")
    assert "40.0 points on average" in small_only and "1 group(s) scored with N <= D rows" in small_only
