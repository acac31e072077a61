"""hftl compare on speech recognition data sets: sized in training rows, scored by WER (lower is better) in the
aggregation, the selection on validation, the paired differences, the report and its figure; never as accuracy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from hftl.compare import aggregate, transcripts
from hftl.compare.grid import expand
from hftl.compare.report import verdict_markdown, write_report
from hftl.compare.selection import Trial, choose
from hftl.compare.spec import load_spec
from hftl.config import save_config
from hftl.run import rundir
from hftl.run.record import DataInfo, RunInfo, RunRecord, TrainInfo, write_record
from tests.helpers.paths import REPO

ASR_RECIPE = REPO / "recipes" / "configs" / "audio" / "whisper_asr_lora.yaml"
# made-up test WER per method: lora transcribes better, so it must rank FIRST (an accuracy ranking puts it last)
WER = {"lora": 0.20, "full": 0.35}
SOURCE_WER = 0.50


def asr_spec(tmp_path: Path, **extra) -> Path:
    spec = {"name": "asr", "methods": ["lora", "full"], "shots_per_class": [24, "all"], "seeds": [0, 1, 2],
            "datasets": [{"name": "speech", "recipe": str(ASR_RECIPE)}], **extra}  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def finish_asr(run, wer: float) -> None:
    """Make a speech recognition run look finished: its config and a results.json as the recipe writes it."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    save_config(run.config, run.run_dir / rundir.CONFIG)
    record = RunRecord(
        run=RunInfo(name=run.name, modality="audio", task="speech_recognition", method=run.method, model=run.backbone,
                    dataset=run.dataset, seed=run.seed),
        params={"trainable": 100 if run.method == "lora" else 1000, "total": 1000},
        data=DataInfo(labels=[], sizes={"train": 24, "test": 100}),
        train=TrainInfo(runtime_s=10.0, samples_per_second=1.0, steps=40, total_steps=40),
        eval={"wer": wer + 0.02, "cer": wer / 2, "loss": 1.0},
        test={"wer": wer, "cer": wer / 2, "loss": 1.0},
        measurements={
            "source_model": {"test": {"wer": SOURCE_WER}, "source_probe": {"wer": 0.25}},
            "extra_splits": {"source_probe": {"wer": 0.25 + wer / 10}},
        },
    )  # fmt: skip
    write_record(run.run_dir, record)


@pytest.fixture
def finished(tmp_path):
    spec = load_spec(asr_spec(tmp_path, shots_per_class=["all"]))
    runs = expand(spec, tmp_path / "report")
    for run in runs:
        finish_asr(run, WER[run.method] + 0.01 * run.seed)
    return spec, runs


def test_a_speech_data_set_is_sized_in_training_rows(tmp_path):
    runs = expand(load_spec(asr_spec(tmp_path)), tmp_path / "report")
    sized = {(r.shots, r.config.data.max_train_samples, r.config.data.shots_per_class) for r in runs}
    assert sized == {(24, 24, None), ("all", None, None)}  # a transcript data set refuses shots_per_class
    assert all(r.config.data.subset_seed == r.seed for r in runs)  # each seed its own training rows
    # the names say what the size counts: training rows, not rows per class (selection runs and cells alike)
    assert {r.name for r in runs if r.seed == 0 and r.method == "lora"} == {"speech__whisper-tiny__lora__rows-24__seed-0",
                                                                            "speech__whisper-tiny__lora__rows-all__seed-0"}
    assert all("__shots-" not in r.name and r.transcribes for r in runs)


def test_the_shipped_asr_spec_expands_and_states_its_budget():
    spec = load_spec(REPO / "recipes" / "compare" / "asr.yaml")
    runs = expand(spec, Path("unused"))
    assert len(runs) == 24 and {r.config.task for r in runs} == {"speech_recognition"}
    assert {r.config.training.metric_for_best for r in runs} == {"wer"} and not any(r.config.training.greater_is_better for r in runs)
    assert {r.config.asr.freeze_encoder for r in runs} == {True, False}
    header = "\n".join((REPO / "recipes" / "compare" / "asr.yaml").read_text().splitlines()[:20])
    assert "hftl compare recipes/compare/asr.yaml" in header and "Budget:" in header


def test_results_csv_holds_wer_and_no_accuracy(finished, tmp_path):
    _, runs = finished
    rows = aggregate.collect(runs)
    aggregate.write_csv(rows, tmp_path / "results.csv")
    read = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [float(r["test_wer"]) for r in read] == pytest.approx([WER[r.method] + 0.01 * r.seed for r in runs])
    assert all(r["task"] == "speech_recognition" and r["source_test_wer"] == str(SOURCE_WER) for r in read)
    assert all(r["test_accuracy"] == "" and r["chance_normalised_accuracy"] == "" for r in read)
    assert json.loads(read[0]["extra_splits_wer"]) == {"source_probe": {"before": 0.25, "after": pytest.approx(0.27)}}


def test_cells_rank_the_lowest_wer_first_and_differences_keep_the_sign(finished):
    _, runs = finished
    rows = aggregate.collect(runs)
    cells = transcripts.wer_cells(rows)
    assert [(c["rank"], c["method"]) for c in cells] == [(1, "lora"), (2, "full")]
    lora = cells[0]
    assert lora["wer"].value == pytest.approx(0.21) and lora["wer"].has_interval
    assert lora["relative_cut"].value == pytest.approx(1 - 0.21 / SOURCE_WER)  # 1 - WER / source WER, > 0: better
    (diff,) = transcripts.differences(rows)
    assert (diff["method"], diff["other"]) == ("lora", "full")
    assert diff["difference"].value == pytest.approx(-0.15) and diff["difference"].method == "paired t over seeds"
    header, body = transcripts.difference_table(rows)
    assert body[0][header.index("lower WER")] == "lora"


def test_the_report_ranks_by_wer_and_keeps_it_out_of_the_accuracy_sections(finished, tmp_path):
    spec, runs = finished
    page = write_report(spec, runs, tmp_path / "report")
    md = (tmp_path / "report" / "results.md").read_text()
    assert "Speech recognition: methods ranked by test word error rate (lower is better)" in md
    assert "1. lora 0.210" in md and "2. full 0.360" in md
    assert md.index("| 1 | audio | speech | zoo:whisper-tiny | lora |") < md.index("| 2 | audio | speech | zoo:whisper-tiny | full |")
    assert "lora +58.0 [+53.0, +63.0] %" in md  # the relative cut: 1 - 0.21 / 0.5, positive = fewer errors
    assert "lora - full -15.0" in md  # WER points, negative: lora's WER is lower
    # WER is not an accuracy: no accuracy table, verdicts, gains or chance normalisation for these runs
    for accuracy_only in ("test accuracy [95%]", "Verdicts against the literature", "minus scratch", "chance-normalised"):
        assert accuracy_only not in md
    assert "not the human speech Whisper was trained on" in md  # what the forgetting probe is, and its limit
    assert "corpus word error rate" in md and "standard error at 50% accuracy" not in md
    assert (tmp_path / "report" / "plots" / "wer_vs_size.png").is_file() and "wer_vs_size" not in page.name
    assert "Speech recognition: test word error rate" in page.read_text()
    assert "| 1 | audio |" not in verdict_markdown(aggregate.collect(runs))


def test_selection_on_validation_chooses_the_lowest_wer(finished):
    _, runs = finished
    cell = [r for r in runs if r.method == "lora"]
    validation = {cell[0].name: 0.40, cell[1].name: 0.25, cell[2].name: 0.30}
    overrides, record = choose([Trial(run, rate) for run, rate in zip(cell, (1e-4, 1e-3, 1e-2), strict=True)],
                               score=lambda run: validation[run.name])  # fmt: skip
    assert record["chosen"] == {"learning_rate": 1e-3} and record["metric"] == "wer" and record["value"] == 0.25
