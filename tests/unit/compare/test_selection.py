"""Hyper-parameters chosen on validation: the spec's learning-rate lists, the selection runs, the choice, and the
zoo check of candidate backbones at spec load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hftl.compare.grid import expand
from hftl.compare.selection import choose, curve_runs, selection_trials
from hftl.compare.spec import load_spec
from hftl.errors import ConfigError


@pytest.fixture
def recipe(tmp_path, tiny_bert, topic_csv) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"modality": "text", "model": {"source": str(tiny_bert)},
                                    "data": {"source": str(topic_csv)}, "training": {"tracking": "none"}}))  # fmt: skip
    return path


def _spec(tmp_path: Path, recipe: Path, **extra) -> Path:
    dataset = {"name": "topics", "recipe": str(recipe), "learning_rates": {"full": [1.0e-4, 1.0e-3, 1.0e-2]},
               **extra.pop("dataset", {})}  # fmt: skip
    spec = {"methods": ["linear_probe", "full"], "shots_per_class": [4, 8], "seeds": [0, 1], "datasets": [dataset], **extra}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_each_cell_with_a_rate_list_gets_one_validation_only_run_per_rate(tmp_path, recipe):
    spec = load_spec(_spec(tmp_path, recipe))
    trials = selection_trials(spec, tmp_path / "r")
    assert sorted(trials) == ["topics__tiny_bert0__full__shots-4", "topics__tiny_bert0__full__shots-8"]
    for cell_trials in trials.values():
        assert [t.value for t in cell_trials] == [1.0e-4, 1.0e-3, 1.0e-2]
        for t in cell_trials:
            cfg = t.run.config
            assert cfg.training.learning_rate == t.value and cfg.evaluation.test is False
            assert cfg.training.seed == cfg.data.subset_seed == spec.selection_seed
            assert t.run.run_dir.parent == tmp_path / "r" / "runs" / "selection"
    # before the choice, the reported runs take no rate from the list; after it, the chosen one
    reported = expand(spec, tmp_path / "r", {"topics__tiny_bert0__full__shots-4": ["training.learning_rate=0.001"]})
    full4 = [r for r in reported if r.method == "full" and r.shots == 4]
    assert {r.config.training.learning_rate for r in full4} == {1.0e-3}
    assert [r.config.data.subset_seed for r in full4] == [0, 1]  # seeds draw their own subsets


def test_a_rate_the_spec_fixes_is_recorded_as_not_selected(tmp_path, recipe):
    spec = load_spec(_spec(tmp_path, recipe, dataset={"learning_rates": {"full": 0.002}}))
    assert selection_trials(spec, tmp_path / "r") == {}
    for run in expand(spec, tmp_path / "r"):
        record = json.loads(run.config.study.selection) if run.method == "full" else None
        assert run.method != "full" or (record["trials"] == 0 and record["chosen"] == {"learning_rate": 0.002})



def test_choose_takes_the_best_validation_score_and_the_first_on_ties(tmp_path, recipe):
    spec = load_spec(_spec(tmp_path, recipe))
    trials = selection_trials(spec, tmp_path / "r")["topics__tiny_bert0__full__shots-4"]
    scores = {trials[0].run.name: 0.5, trials[1].run.name: 0.8, trials[2].run.name: 0.8}
    overrides, record = choose(trials, lambda run: scores[run.name])
    assert record["chosen"] == {"learning_rate": 1.0e-3} and record["value"] == 0.8 and record["trials"] == 3
    assert record["split"] == "validation" and record["searched"] == {"learning_rate": [1.0e-4, 1.0e-3, 1.0e-2]}
    assert overrides[0] == "training.learning_rate=0.001"
    # the record travels in the run config and back out as JSON
    runs = expand(spec, tmp_path / "r", {"topics__tiny_bert0__full__shots-4": overrides})
    chosen = next(r for r in runs if r.method == "full" and r.shots == 4)
    assert json.loads(chosen.config.study.selection) == record


def test_lower_is_better_metrics_pick_the_lowest(tmp_path, recipe):
    spec = load_spec(_spec(tmp_path, recipe, overrides=["training.metric_for_best=loss", "training.greater_is_better=false"]))
    trials = selection_trials(spec, tmp_path / "r")["topics__tiny_bert0__full__shots-4"]
    values = iter([0.9, 0.3, 0.6])
    scores = {t.run.name: next(values) for t in trials}
    _, record = choose(trials, lambda run: scores[run.name])
    assert record["chosen"] == {"learning_rate": 1.0e-3}


def test_curve_runs_train_every_seed_at_every_rate_apart_from_the_cells(tmp_path, recipe):
    spec = load_spec(_spec(tmp_path, recipe, curve_methods=["full"]))
    curve = curve_runs(spec, tmp_path / "r")
    assert len(curve) == 2 * 2 * 3  # seeds x sizes x rates
    assert all(r.run_dir.parent == tmp_path / "r" / "runs" / "curve" for r in curve)
    assert all(json.loads(r.config.study.selection)["role"] == "curve" for r in curve)
    # with the cells' choices known, the chosen rate is left out: those runs are the cells' own
    trials = selection_trials(spec, tmp_path / "r")["topics__tiny_bert0__full__shots-4"]
    overrides, _ = choose(trials, lambda run: {1e-4: 0.5, 1e-3: 0.9, 1e-2: 0.1}[run.config.training.learning_rate])
    rest = curve_runs(spec, tmp_path / "r", {"topics__tiny_bert0__full__shots-4": overrides})
    assert len(rest) == 2 * 2 * 3 - 2  # the 2 seeds at 1e-3 and 4 shots only
    assert {r.config.training.learning_rate for r in rest if r.shots == 4} == {1e-4, 1e-2}


def test_curve_rates_widen_the_curve_without_entering_the_selection(tmp_path, recipe):
    spec = load_spec(_spec(tmp_path, recipe, curve_methods=["full"], dataset={"curve_rates": {"full": [1.0e-5]}}))
    trials = selection_trials(spec, tmp_path / "r")["topics__tiny_bert0__full__shots-4"]
    assert [t.value for t in trials] == [1.0e-4, 1.0e-3, 1.0e-2]  # the grid alone is searched
    overrides, record = choose(trials, lambda run: {1e-4: 0.5, 1e-3: 0.9, 1e-2: 0.1}[run.config.training.learning_rate])
    assert record["searched"] == {"learning_rate": [1.0e-4, 1.0e-3, 1.0e-2]}
    curve = curve_runs(spec, tmp_path / "r", {"topics__tiny_bert0__full__shots-4": overrides})
    four = [r for r in curve if r.shots == 4]
    assert sorted({r.config.training.learning_rate for r in four}) == [1.0e-5, 1.0e-4, 1.0e-2]
    assert len(curve) == 2 * 3 + 2 * 4  # 4 shots: 3 rates but the chosen one; 8 shots: all 4, per seed
    extra = [json.loads(r.config.study.selection) for r in curve if r.config.training.learning_rate == 1.0e-5]
    assert len(extra) == 4 and all(e["role"] == "curve" and "beyond the selection grid" in e["how"] for e in extra)
    # a grid point's record is the one runs made before curve_rates existed carry (they stay done)
    grid = json.loads(next(r for r in four if r.config.training.learning_rate == 1.0e-4).config.study.selection)
    assert grid == {"role": "curve", "searched": {"learning_rate": [1.0e-4, 1.0e-3, 1.0e-2]},
                    "chosen": {"learning_rate": 1.0e-4}, "how": "learning-rate curve point: set, not selected"}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"dataset": {"curve_rates": {"full": [1.0e-5]}}}, r"curve_rates.full is set but full is not one of curve_methods"),
        ({"curve_methods": ["full"], "dataset": {"curve_rates": {"full": [1.0e-3]}}},
         r"curve_rates.full must be distinct values > 0 that learning_rates.full does not list"),
        ({"curve_methods": ["full"], "dataset": {"curve_rates": {"full": [0.0]}}}, r"curve_rates.full must be distinct"),
        ({"curve_methods": ["full"], "dataset": {"learning_rates": {"full": 1.0e-3}, "curve_rates": {"full": [1.0e-5]}}},
         r"curve_rates.full extends a curve, which needs learning_rates.full to be a list"),
    ],
)
def test_curve_rate_errors_name_the_key(tmp_path, recipe, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_spec(_spec(tmp_path, recipe, **extra))


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"learning_rates": {"full": []}}, r"learning_rates.full must be distinct values > 0"),
        ({"learning_rates": {"full": [1.0e-3, 1.0e-3]}}, r"learning_rates.full must be distinct"),
        ({"backbones": ["zoo:no-such-model@L3"]}, r"'zoo:no-such-model@L3' is not a model of the zoo .*zoo models: .*minilm-l6"),
        ({"backbones": ["zoo:bbc-news"]}, r"is not a model of the zoo"),  # a data set is no backbone
    ],
)
def test_spec_errors_before_any_run(tmp_path, recipe, dataset, message):
    with pytest.raises(ConfigError, match=message):
        load_spec(_spec(tmp_path, recipe, dataset=dataset))


def test_a_zoo_candidate_with_suffixes_passes_the_check(tmp_path, recipe):
    spec = load_spec(_spec(tmp_path, recipe, dataset={"backbones": ["zoo:minilm-l6", "zoo:minilm-l6@random"]}))
    assert spec.datasets[0].backbones == ["zoo:minilm-l6", "zoo:minilm-l6@random"]
