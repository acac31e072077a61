"""A tiny study end to end (hftl compare on the tiny BERT): selection on validation, per-seed subsets, early stopping
under a cap, the logistic probe, LP-FT from the probed head, and every STUDY_CONTRACT field in results.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from hftl.compare import compare
from hftl.compare.executors.local import LocalExecutor
from hftl.compare.grid import expand
from hftl.compare.runner import run_grid
from hftl.compare.selection import select_cells, selection_trials
from hftl.compare.spec import load_spec
from hftl.run.record import read_record


@pytest.fixture
def tiny_recipe(tmp_path, tiny_bert, topic_csv) -> Path:
    recipe = {
        "modality": "text",
        "model": {"source": str(tiny_bert)},
        "data": {"source": str(topic_csv)},
        "text": {"max_length": 16},
        "training": {"batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0, "tracking": "none"},
        "output": {"save_merged": False},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _spec(tmp_path: Path, recipe: Path, **extra) -> Path:
    spec = {
        "methods": ["linear_probe", "lp_ft"],
        "shots_per_class": [6],
        "seeds": [0, 1],
        "max_parallel": 2,
        "overrides": ["training.max_steps=12", "training.eval_steps=2", "training.early_stopping_patience=2",
                      "method.probe.c_grid=[0.01, 1.0]"],
        "measure": {"shift": True},
        "datasets": [{"name": "topics", "recipe": str(recipe),
                      "learning_rates": {"full": [1.0e-4, 3.0e-3], "lp_ft": [1.0e-4, 3.0e-3]}}],
        **extra,
    }  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_tiny_study_writes_the_contract_fields(tmp_path, tiny_recipe):
    report = tmp_path / "report"
    compare(_spec(tmp_path, tiny_recipe), report, echo=lambda _: None)
    records = {p.parent.name: read_record(p.parent) for p in (report / "runs").glob("*/results.json")}
    assert len(records) == 2 * 2  # the reported runs; selection runs live under runs/selection/
    spec = load_spec(_spec(tmp_path, tiny_recipe))
    trials = selection_trials(spec, report)
    assert list(trials) == ["topics__tiny_bert0__lp_ft__shots-6"]  # lp_ft's two rates; the probe sweeps C in-run
    for trial in trials["topics__tiny_bert0__lp_ft__shots-6"]:
        cfg = trial.run.config
        assert cfg.evaluation.test is False and not (cfg.evaluation.shift or cfg.evaluation.forgetting)
        assert cfg.training.seed == cfg.data.subset_seed == 1000
        record = read_record(trial.run.run_dir)  # validation scores only: the choice cannot read test
        assert record.test == {} and "per_row" not in record.measurements and "accuracy" in record.eval

    test_ids = {json.dumps(r.measurements["per_row"]["test_ids"]) for r in records.values()}
    assert len(test_ids) == 1  # every run of the data set scores the same test rows, in one order
    digests = {}
    for name, record in records.items():
        study, per_row = record.measurements["study"], record.measurements["per_row"]
        seed = int(name.rsplit("seed-", 1)[1])
        assert study["subset_seed"] == seed and len(study["subset_digest"]) == 16
        digests.setdefault(seed, set()).add(study["subset_digest"])
        assert len(per_row["test_correct"]) == len(per_row["test_ids"]) == record.data.sizes["test"]
        assert sum(per_row["test_correct"]) / len(per_row["test_correct"]) == pytest.approx(record.test["accuracy"])
        assert per_row["shift"] and all(len(v) == len(per_row["test_ids"]) for v in per_row["shift"].values())
        budget = study["budget"]
        if record.run.method == "linear_probe":
            assert budget["solver"] == "lbfgs" and budget["stopped"] in ("converged", "cap")
            assert study["selection"]["searched"] == {"l2_C": [0.01, 1.0]}
            assert study["selection"]["split"] == "validation"
        else:
            assert study["variant"] == "converged" and budget["cap_steps"] == 12 and budget["patience_evals"] == 2
            assert budget["stopped"] in ("early_stopping", "cap")
            assert budget["stopped"] == "cap" or budget["steps"] < 12
        if record.run.method == "lp_ft":  # phase 2 starts from the L-BFGS head; phase 1 took no loop steps
            chosen = study["selection"]
            assert chosen["searched"] == {"learning_rate": [1.0e-4, 3.0e-3], "l2_C": [0.01, 1.0]}
            assert chosen["trials"] == 2 and chosen["split"] == "validation" and chosen["selection_seed"] == 1000
            assert budget["probe_phase"]["solver"] == "lbfgs" and "l2_C" in chosen["chosen"]
    assert digests[0] != digests[1] and all(len(d) == 1 for d in digests.values())  # one subset per seed



def _split_folder(topic_csv: Path, dest: Path, scramble_test: bool) -> Path:
    """train/validation/test CSVs from the topic CSV; scramble_test: the test labels rotated (all wrong)."""
    rows = list(csv.DictReader(topic_csv.open()))
    labels = sorted({r["label"] for r in rows})
    parts = {"train": rows[:80], "validation": rows[80:100], "test": rows[100:]}
    if scramble_test:
        parts["test"] = [dict(r, label=labels[(labels.index(r["label"]) + 1) % len(labels)]) for r in parts["test"]]
    dest.mkdir(parents=True)
    for split, part in parts.items():
        with (dest / f"{split}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(part)
    return dest


@pytest.mark.slow  # 4 runs; the fast suite's end-to-end test checks that selection runs never score test
def test_a_selection_is_the_same_whatever_the_test_labels(tmp_path, tiny_recipe, topic_csv):
    """Selection runs never score test, and the choice reads validation only: scrambling test changes nothing."""
    chosen = []
    for scramble in (False, True):
        where = tmp_path / f"scrambled-{scramble}"
        data = _split_folder(topic_csv, where / "data", scramble)
        recipe = yaml.safe_load(tiny_recipe.read_text())
        recipe["data"]["source"] = str(data)
        (where / "tiny.yaml").write_text(yaml.safe_dump(recipe))
        spec = load_spec(_spec(where, where / "tiny.yaml", methods=["full"], seeds=[0], measure={}))
        report = where / "report"
        picked = select_cells(spec, report, lambda runs, report=report: run_grid(runs, report, LocalExecutor(2), 1),
                              echo=lambda _: None)  # fmt: skip
        trials = selection_trials(spec, where / "report")["topics__tiny_bert0__full__shots-6"]
        for trial in trials:
            assert read_record(trial.run.run_dir).test == {}  # never scored
        record = json.loads(expand(spec, where / "report", picked)[0].config.study.selection)
        chosen.append((record["chosen"], [t["value"] for t in record["per_trial"]]))
    assert chosen[0] == chosen[1]


def test_lp_ft_fine_tunes_from_the_converged_logistic_head(quick_overrides, tmp_path):
    """With a vanishing fine-tune step, LP-FT's model IS the probe: its phase 2 starts from the L-BFGS head."""
    from hftl.config import load_config
    from hftl.recipe import run

    common = [*quick_overrides, "training.tracking=none", "method.probe.c_grid=[0.1, 1.0]", "study.per_row=true"]
    probe = run(load_config(None, [*common, "method.name=linear_probe", f"output.dir={tmp_path / 'probe'}"]))
    lp_ft = run(load_config(None, [*common, "method.name=lp_ft", "training.max_steps=1", "training.learning_rate=1e-12",
                                   f"output.dir={tmp_path / 'lp_ft'}"]))  # fmt: skip
    assert lp_ft["per_row"]["test_correct"] == probe["per_row"]["test_correct"]
    assert lp_ft["study"]["selection"]["chosen"]["l2_C"] == probe["study"]["selection"]["chosen"]["l2_C"]
    assert lp_ft["study"]["budget"]["cap_steps"] == 1 and lp_ft["study"]["budget"]["probe_phase"]["solver"] == "lbfgs"
