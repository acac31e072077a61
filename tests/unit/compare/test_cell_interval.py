"""aggregate.cell_interval: which interval each measure of a cell gets (numbers by hand in test_stats.py)."""

from __future__ import annotations

import pytest

from hftl.compare import aggregate, plots, stats, transcripts

T_2_SQUARED = 18.512822  # t(0.975, 2)^2


def seeds(key: str, values: list[float], rows: int | None = 270, rows_key: str = "test_rows") -> list[dict]:
    return [{key: v, rows_key: rows, "seed": s} for s, v in enumerate(values)]


def test_accuracy_cells_stay_inside_0_1():
    lora = aggregate.cell_interval(seeds("test_accuracy", [266 / 270, 1.0, 269 / 270]), "test_accuracy")
    assert lora.method == stats.EFFECTIVE_WILSON and lora.text() == "0.994 [0.932, 0.999]"  # t: [0.975, 1.013]
    perfect = aggregate.cell_interval(seeds("test_accuracy", [1.0, 1.0, 1.0]), "test_accuracy")
    assert perfect.low == pytest.approx(810 / (810 + T_2_SQUARED)) and perfect.high == 1.0  # the 810 pooled test rows
    one = aggregate.cell_interval(seeds("test_accuracy", [0.8], rows=10), "test_accuracy")
    assert one == stats.wilson_interval(8, 10)  # a single seed: Wilson on its own rows


def test_f1_shift_and_probe_rows_use_their_own_row_counts():
    f1 = aggregate.cell_interval(seeds("test_f1_macro", [1.0, 1.0]), "test_f1_macro")
    q2 = 12.706205**2  # t(0.975, 1)^2, over 2 x 270 pooled test rows
    assert f1.low == pytest.approx(540 / (540 + q2), abs=1e-5)
    knn = aggregate.cell_interval(seeds("knn_after", [1.0, 1.0], rows=100, rows_key="forgetting_rows"), "knn_after")
    assert knn.low == pytest.approx(200 / (200 + q2), abs=1e-5)  # the probe rows, not the test rows
    cka = aggregate.cell_interval(seeds("cka", [1.0, 1.0]), "cka")  # rows not recorded: no interval, not a point
    assert not cka.has_interval


def test_training_seconds_get_the_log_scale_interval_above_0():
    # 10, 20, 200 s (a run slowed 10x by a loaded machine): mean +- t = 76.7 [-189.0, 342.3], below 0 s;
    # logs 2.302585, 2.995732, 5.298317: mean 3.532212 -> exp = 34.1995 s, s_log 1.568347, half 4.302653 * 1.568347
    # / 1.732051 = 3.895980 -> [exp(-0.363768), exp(7.428192)] = [0.695, 1682.4] s
    runtime = aggregate.cell_interval(seeds("train_runtime_s", [10.0, 20.0, 200.0]), "train_runtime_s")
    assert runtime.method == stats.GEOMETRIC_T and runtime.value == pytest.approx(34.1995, rel=1e-5)
    assert runtime.low == pytest.approx(0.69518, rel=1e-4) and runtime.high == pytest.approx(1682.44, rel=1e-4)
    assert stats.t_interval([10.0, 20.0, 200.0]).low < 0
    (cell,) = aggregate.cells([{**r, "modality": "text", "dataset": "d", "backbone": "b", "method": "full",
                                "shots_per_class": 16} for r in seeds("train_runtime_s", [10.0, 20.0, 200.0])])  # fmt: skip
    assert cell["runtime_ci"] == runtime and aggregate.table_rows([cell])[0][-1] == "34.2 [0.7, 1682.4]"
    assert aggregate.TABLE_HEADER[-1] == "train s, geometric mean [95%]"
    transcribed = [{**r, "task": transcripts.TASK, "modality": "audio", "dataset": "d", "backbone": "b", "method": "lora",
                    "shots_per_class": 16} for r in seeds("train_runtime_s", [10.0, 20.0, 200.0])]  # fmt: skip
    assert transcripts.wer_cells(transcribed)[0]["runtime"] == runtime  # the speech tables: the same interval


def test_unbounded_measures_and_wer_above_1_keep_the_t_interval():
    steps = aggregate.cell_interval(seeds("steps", [10.0, 20.0, 30.0]), "steps")
    assert steps == stats.t_interval([10.0, 20.0, 30.0])
    inserted = aggregate.cell_interval(seeds("test_wer", [0.9, 1.3, 1.1]), "test_wer")  # more insertions than words
    assert inserted == stats.t_interval([0.9, 1.3, 1.1])
    wer = aggregate.cell_interval(seeds("test_wer", [0.01, 0.0, 0.02]), "test_wer")
    assert wer.method == stats.EFFECTIVE_WILSON and wer.low >= 0.0 and stats.t_interval([0.01, 0.0, 0.02]).low < 0.0


def test_transcript_cells_and_error_bars_use_the_bounded_interval():
    rows = [{"task": transcripts.TASK, "modality": "audio", "dataset": "d", "backbone": "b", "method": "lora",
             "shots_per_class": 16, "seed": s, "test_rows": 50, "test_wer": w, "test_cer": w / 2}
            for s, w in enumerate([0.01, 0.0, 0.02])]  # fmt: skip
    (cell,) = transcripts.wer_cells(rows)
    assert cell["wer"] == aggregate.cell_interval(rows, "test_wer") and cell["wer"].low >= 0.0
    below, above = plots.error_bar(cell["wer"])
    assert below == pytest.approx(cell["wer"].value - cell["wer"].low) and above != pytest.approx(below)  # uneven
    assert plots.error_bars([(1.0, 2.0), (3.0, 4.0)]) == [[1.0, 3.0], [2.0, 4.0]]
    assert plots.error_bar(None) == (0.0, 0.0)
