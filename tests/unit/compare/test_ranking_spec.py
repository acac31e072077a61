"""recipes/compare/ranking_vision.yaml measures what its verdict rows read: the Kornblith rows (Lite0 and Lite2 under
full fine-tuning and the probe, same seeds) and LogME against tuned fine-tuned accuracy (3+ candidates, a learning
rate chosen on validation, early stopping under a declared cap), and its header says what it costs and cannot say."""

from __future__ import annotations

from hftl.compare.grid import expand
from hftl.compare.selection import selection_trials
from hftl.compare.spec import load_spec
from tests.helpers.paths import REPO

SPEC = REPO / "recipes" / "compare" / "ranking_vision.yaml"


def test_ranking_spec_fine_tunes_every_candidate_with_a_rate_chosen_on_validation(tmp_path):
    spec = load_spec(SPEC)
    assert {"linear_probe", "full"} <= set(spec.methods) and len(spec.seeds) >= 3 and spec.resample_subsets
    (ds,) = spec.datasets
    assert len(ds.backbones) >= 3 and {"zoo:efficientnet-lite0", "zoo:efficientnet-lite2"} <= set(ds.backbones)
    assert isinstance(ds.learning_rates.full, list) and len(ds.learning_rates.full) >= 2
    trials = selection_trials(spec, tmp_path)
    assert len(trials) == len(ds.backbones)  # one rate grid per candidate, run on validation only
    assert all(not t.run.config.evaluation.test for ts in trials.values() for t in ts)
    full = [r for r in expand(spec, tmp_path) if r.method == "full"]
    assert len(full) == len(ds.backbones) * len(spec.seeds)
    for run in full:
        training = run.config.training
        assert training.max_steps and training.eval_steps and training.early_stopping_patience  # converge under a cap
        assert run.config.model.batch_norm_momentum == 0.1  # a short fine-tune re-estimates batch-norm statistics
    probe = [r for r in expand(spec, tmp_path) if r.method == "linear_probe"]
    assert {r.config.data.subset_seed for r in probe} == {r.config.data.subset_seed for r in full} == set(spec.seeds)


def test_ranking_spec_header_states_cost_command_and_limits():
    header = SPEC.read_text().split("\nname:")[0]
    assert "hftl compare recipes/compare/ranking_vision.yaml" in header and "CPU" in header
    assert "CANNOT conclude" in header and "fine-tun" in header
