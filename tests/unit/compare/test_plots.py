"""The compare figures draw every cell the report can hold."""

from __future__ import annotations

from hftl.compare import plots


def test_accuracy_figure_draws_a_cell_of_perfect_seeds(tmp_path):
    # the default study's audio LP-FT cell: 5 seeds at 1.0 on 270 rows each (its interval once ended a hair below
    # its mean, a negative error bar that stopped the report)
    rows = [{"modality": "audio", "dataset": "speech", "backbone": "whisper", "method": method, "shots_per_class": 16,
             "seed": seed, "test_accuracy": 1.0 if method == "lp_ft" else 0.9 + 0.01 * seed, "test_rows": 270}
            for method in ("lp_ft", "full") for seed in range(5)]  # fmt: skip
    path = plots.accuracy_vs_size(rows, tmp_path / "accuracy_vs_size.png")
    assert path is not None and path.stat().st_size > 0
