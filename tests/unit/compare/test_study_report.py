"""End to end without training: hand-written results.json files (STUDY_CONTRACT.md's fields) for a grid of five
vision candidates and an older-style text grid, through aggregation -> statistics -> verdicts -> report and
`hftl compare SPEC --verdicts`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hftl.compare import aggregate, effects, findings
from hftl.compare.grid import expand
from hftl.compare.report import render_markdown, write_report
from hftl.compare.runner import run_state
from hftl.compare.spec import load_spec
from hftl.compare.verdicts import verdict_table
from hftl.config import save_config
from hftl.run import rundir

REPO = Path(__file__).resolve().parents[3]
TEST_ROWS, PROBE_ROWS = 40, 30
BACKBONES = {"zoo:efficientnet-lite0": 0.70, "zoo:efficientnet-lite1": 0.72, "zoo:efficientnet-lite2": 0.75,
             "zoo:dinov2-small": 0.80, "zoo:dinov2-small@random": 0.40}  # fmt: skip
METHOD = {"full": 0.0, "lp_ft": 0.0125, "lora": -0.025, "linear_probe": -0.05}
SHIFT_DROP = {"full": 0.20, "lp_ft": 0.10, "lora": 0.15, "linear_probe": 0.10, "scratch": 0.2}
KEPT = {"full": 15, "lp_ft": 18, "lora": 21, "linear_probe": 24}  # probe rows right after training (24 before)


def _correct(k: int, n: int, seed: int) -> list[int]:
    order = np.random.default_rng(seed).permutation(n)
    return [int(i < k) for i in order]


def _record(run, accuracy: float, *, study: bool) -> dict:
    """One run's results.json as the contract writes it (study=False: an older run without the study's sections)."""
    k = round(accuracy * TEST_ROWS)
    test = _correct(k, TEST_ROWS, run.seed)
    drop = round(SHIFT_DROP[run.method] * TEST_ROWS)
    shifted = [c if i >= drop or not c else 0 for i, c in enumerate(sorted(test, reverse=True))]
    shifted = [shifted[i] for i in np.argsort(np.argsort(-np.asarray(test), kind="stable"), kind="stable")]
    shots = 4 if run.shots == 4 else 64
    record = {
        "schema_version": 1,
        "run": {"name": run.name, "modality": run.modality, "method": run.method, "model": run.backbone,
                "dataset": run.dataset, "seed": run.seed},
        "params": {"trainable": 1000, "total": 10000},
        "data": {"labels": [str(i) for i in range(10)], "train": 10 * shots, "validation": 100, "test": TEST_ROWS},
        "train": {"runtime_s": 3.0, "samples_per_second": 10.0, "steps": 120, "total_steps": 500},
        "eval": {"accuracy": accuracy},
        "test": {"accuracy": k / TEST_ROWS, "f1_macro": k / TEST_ROWS - 0.02},
    }  # fmt: skip
    if not study:
        return record
    record["study"] = {
        "subset_seed": run.seed, "subset_digest": f"{run.dataset}-{shots}-{run.seed}",
        "selection": {"searched": {"learning_rate": [1e-4, 3e-4, 1e-3]}, "chosen": {"learning_rate": 3e-4},
                      "metric": "accuracy", "split": "validation", "value": accuracy, "trials": 3},
        "budget": {"cap_steps": 500, "steps": 120 + 10 * run.seed, "stopped": "early_stopping", "patience_evals": 3},
        "variant": "converged",
    }  # fmt: skip
    record["per_row"] = {"test_ids": [f"r{i}" for i in range(TEST_ROWS)], "test_correct": test,
                         "shift": {"gaussian_noise@3": shifted, "rotation_15deg (not CIFAR-10-C)": shifted}}  # fmt: skip
    if run.method != "scratch":
        before = [1] * 24 + [0] * 6
        after = [1] * KEPT[run.method] + [0] * (PROBE_ROWS - KEPT[run.method])
        record["forgetting"] = {"probe": "digits", "probe_rows": PROBE_ROWS, "correct_before": before,
                                "correct_after": after, **({"control": True} if run.method == "linear_probe" else {})}  # fmt: skip
    dim = 384 if "dinov2" in run.backbone else 1280
    base = BACKBONES.get(run.backbone, 0.8)
    swapped = {"zoo:efficientnet-lite0": 0.73}.get(run.backbone, base)  # LogME puts Lite0 above Lite1
    record["transferability"] = {"logme": 10 * swapped + 0.01 * run.seed, "knn": base, "probe_accuracy": base - 0.05,
                                 "n_rows": 10 * shots,
                                 "feature_dim": dim, "n_le_d": 10 * shots <= dim}  # fmt: skip
    return record


def _accuracy(run) -> float:
    size = 0.1 if run.shots == 64 else 0.0
    jitter = 0.025 * (run.seed % 2)
    if run.method == "scratch":
        return (0.30 if run.shots == 4 else 0.78) + jitter
    return BACKBONES.get(run.backbone, 0.8) + METHOD[run.method] + size + jitter


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("study"))


def write_study(tmp_path: Path):
    """The grid's spec and made-up finished runs under tmp_path: (spec path, spec, runs)."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "study", "methods": ["scratch", "linear_probe", "lora", "full", "lp_ft"], "shots_per_class": [4, 64],
        "seeds": [0, 1, 2],
        "datasets": [
            {"name": "fashion", "recipe": str(REPO / "recipes/configs/vision/dinov2_lora.yaml"), "backbones": list(BACKBONES)},
            {"name": "news", "recipe": str(REPO / "recipes/configs/text/minilm_lora.yaml")},
        ],
    }))  # fmt: skip
    spec = load_spec(spec_path)
    runs = expand(spec, tmp_path / "report")
    for run in runs:
        run.run_dir.mkdir(parents=True)
        save_config(run.config, run.run_dir / rundir.CONFIG)
        record = _record(run, min(_accuracy(run), 1.0), study=run.modality == "vision")
        (run.run_dir / rundir.RESULTS).write_text(json.dumps(record))
    return spec_path, spec, runs


def test_rows_carry_the_contract_fields_and_tolerate_older_runs(study, tmp_path):
    _, _, runs = study
    rows = aggregate.collect(runs)
    aggregate.write_csv(rows, tmp_path / "results.csv")
    read = list(csv.DictReader((tmp_path / "results.csv").open()))
    vision = next(r for r in read if r["dataset"] == "fashion" and r["method"] == "full" and r["seed"] == "1")
    assert vision["variant"] == "converged" and vision["stopped"] == "early_stopping" and vision["steps"] == "130"
    assert vision["tuned"] == "learning_rate=0.0003 (of 3 on validation)" and vision["shift_same_rows"] == "True"
    assert float(vision["forgetting_change"]) == pytest.approx((15 - 24) / 30) and vision["test_rows"] == "40"
    assert float(vision["chance_normalised_accuracy"]) == pytest.approx((float(vision["test_accuracy"]) - 0.1) / 0.9)
    text = next(r for r in read if r["dataset"] == "news")
    assert text["variant"] == "" and text["subset_digest"] == "" and text["forgetting_change"] == ""
    assert "per_row" not in read[0]  # per-row correctness stays in memory


def test_the_probe_score_ranks_backbones_beside_logme_and_knn(study):
    _, _, runs = study
    rows = aggregate.collect(runs)
    assert {r["probe_transfer"] for r in rows if r["backbone"] == "zoo:efficientnet-lite2"} == {BACKBONES["zoo:efficientnet-lite2"] - 0.05}
    _, table = findings.ranking_table(rows)
    probe = [r for r in table if r[3] == "probe_transfer" and r[4] == "full"]
    assert probe and all(r[6] == "1.00" for r in probe)  # it orders the candidates as their accuracy does
    assert any("probe accuracy vs full" in line for line in findings.transferability_summary(rows))


def test_effects_and_verdicts_from_the_records(study):
    _, _, runs = study
    rows = aggregate.collect(runs)
    lite = effects.backbone_difference(rows, "zoo:efficientnet-lite2", "zoo:efficientnet-lite0", "full")
    assert [round(e["difference"].value, 4) for e in lite] == [0.05, 0.05]  # 0.75 - 0.70 at both sizes, every seed
    table = {(v["modality"], v["key"]): v for v in verdict_table(rows)}
    assert table["vision", "kumar_lpft"]["verdict"] == "agrees"
    assert table["vision", "he"]["verdict"] == "agrees"  # gap +40 pt at 4/class -> ~0 at 64
    assert table["vision", "kornblith_ft"]["verdict"] == "agrees"  # the fine-tuned (full) runs
    assert table["vision", "biderman"]["verdict"] == "not measured"  # one learning rate per method
    logme = table["vision", "logme"]  # against the full runs' accuracy
    assert logme["verdict"] != "not measured" and "N <= D for" in logme["measured"]
    # the older text runs: no converged scratch, no same-row shift, one backbone
    assert {v["verdict"] for (m, _), v in table.items() if m == "text"} == {"not measured"}


def test_report_holds_checklist_verdicts_and_intervals(study, tmp_path, capsys):
    spec_path, spec, runs = study
    page = write_report(spec, runs, tmp_path / "report")
    markdown = (tmp_path / "report" / "results.md").read_text()
    assert markdown == render_markdown(spec, runs, aggregate.collect(runs))
    checklist = markdown.split("## Reviewer's checklist")[1].split("## ")[0]
    assert ("Tuning: fashion: scratch, linear_probe, lora, full, lp_ft: searched on validation (learning_rate=0.0003 "
            "(of 3 on validation)), 30 of 30 runs record it | news: ") in checklist  # fmt: skip
    assert "news: scratch, linear_probe, lora, full, lp_ft: NOT tuned (fixed learning rate" in checklist  # older runs
    assert "fashion: scratch, linear_probe, lora, full, lp_ft: 120-140 steps under a cap of 500, stopped by 30 " \
           "early_stopping (30 converged)" in checklist
    assert "Training subsets: 2 of 2 (data set, size) groups drew a different subset per seed" in checklist
    assert "fashion: 40 rows (standard error at 50% accuracy 7.9 pt)" in checklist
    assert "Shifts (averaged): gaussian_noise@3, rotation_15deg (not CIFAR-10-C)." in checklist
    assert "N <= D rows" in checklist and "Not concluded:" in checklist
    assert "| agrees |" in markdown and "Rules: a direction claim agrees" in markdown
    assert "Forgot least" not in markdown and "CIFAR-10-C corruption" not in markdown
    assert "linear_probe (control) +0.0" in markdown
    assert "<h2>Verdicts against the literature</h2>" in page.read_text()

    from hftl.cli import main

    assert main(["compare", str(spec_path), "--report-dir", str(spec_path.parent / "report"), "--verdicts"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{len(runs)} of {len(runs)} runs finished") and "| vision |" in printed


def test_report_only_refuses_a_folder_without_finished_runs(tmp_path, capsys):
    """A mistyped --report-dir gets a one-line error naming the folder, not an empty report."""
    from hftl.cli import main

    spec_path, _, _ = write_study(tmp_path)
    empty = tmp_path / "elsewhere"
    assert main(["compare", str(spec_path), "--report-dir", str(empty), "--report-only"]) == 2
    assert "no finished runs of study under" in capsys.readouterr().err and not (empty / "results.md").exists()


def test_report_only_rebuilds_from_finished_runs_without_running(tmp_path, capsys):
    spec_path, _, runs = write_study(tmp_path)
    stale = next(r for r in runs if r.dataset == "news")
    saved = yaml.safe_load((stale.run_dir / rundir.CONFIG).read_text())
    saved["training"]["log_every_steps"] += 1  # as if a default changed since it ran
    assert saved["training"].pop("resume_from") is None  # as if the key (null: unset) were added since: no change
    (stale.run_dir / rundir.CONFIG).write_text(yaml.safe_dump(saved))
    assert run_state(stale) == "changed"
    report = tmp_path / "report"
    before = sorted(p.name for p in (report / "runs").iterdir())

    from hftl.cli import main

    assert main(["compare", str(spec_path), "--report-dir", str(report), "--report-only"]) == 0
    assert "report:" in capsys.readouterr().out
    markdown = (report / "results.md").read_text()
    assert (f"{len(runs)} of {len(runs)} runs finished. 1 of them ran under a config other than the one the spec "
            "generates now (differing in training.log_every_steps); this report") in markdown
    assert len(list(csv.DictReader((report / "results.csv").open()))) == len(runs)  # the changed run included
    assert sorted(p.name for p in (report / "runs").iterdir()) == before  # nothing ran
    assert "Wilson at the effective n" in markdown and (report / "plots" / "accuracy_vs_size.png").is_file()

    (report / "results.md").unlink()  # both flags: the report is rebuilt AND the verdict table printed
    assert main(["compare", str(spec_path), "--report-dir", str(report), "--report-only", "--verdicts"]) == 0
    printed = capsys.readouterr().out
    assert (report / "results.md").is_file() and "report:" in printed and "runs finished" in printed
    assert "Rules: a direction claim agrees" in printed


def test_the_header_describes_the_runs_as_collected(tmp_path):
    """Each run's state is read once (aggregate.collect, into its row and results.csv): a config rewritten after
    the rows were read does not change what the report's header says about them."""
    _, spec, runs = write_study(tmp_path)
    stale = runs[0]
    saved = yaml.safe_load((stale.run_dir / rundir.CONFIG).read_text())
    saved["training"]["log_every_steps"] += 1
    (stale.run_dir / rundir.CONFIG).write_text(yaml.safe_dump(saved))
    rows = aggregate.collect(runs, states=("done", "changed"))
    assert [r["run_state"] for r in rows] == ["changed"] + ["done"] * (len(runs) - 1)
    assert rows[0][aggregate.CONFIG_CHANGES] == ["training.log_every_steps"] and rows[1][aggregate.CONFIG_CHANGES] == []
    save_config(stale.config, stale.run_dir / rundir.CONFIG)  # after the rows were read: it would read done now
    assert run_state(stale) == "done"
    header = render_markdown(spec, runs, rows).split("## ")[0]
    assert ("1 of them ran under a config other than the one the spec generates now (differing in "
            "training.log_every_steps)") in header
    aggregate.write_csv(rows, tmp_path / "results.csv")
    assert [r["run_state"] for r in csv.DictReader((tmp_path / "results.csv").open())][:2] == ["changed", "done"]


def test_curve_runs_reach_the_biderman_verdict_and_their_section(tmp_path, capsys):
    """curve_methods' runs (every seed at every swept rate) are read by the Biderman verdict and the curve section of
    results.md and `--verdicts`, and by no other table (the reported runs' count and tables stay the cells')."""
    from hftl.cli import main
    from hftl.compare.selection import curve_runs

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "curve", "methods": ["linear_probe", "lora", "full"], "shots_per_class": [64], "seeds": [0, 1, 2],
        "curve_methods": ["lora", "full"],
        "datasets": [{"name": "fashion", "recipe": str(REPO / "recipes/configs/vision/dinov2_lora.yaml"),
                      "learning_rates": {"lora": [1e-4, 1e-3], "full": [1e-5, 1e-4]}}],
    }))  # fmt: skip
    spec = load_spec(spec_path)
    report = tmp_path / "report"
    runs, curve = expand(spec, report), curve_runs(spec, report)
    gain = {("lora", 1e-3): 0.04, ("full", 1e-5): -0.05}  # each method's best rate: lora 1e-3, full 1e-4
    for run in runs + curve:
        run.run_dir.mkdir(parents=True)
        save_config(run.config, run.run_dir / rundir.CONFIG)
        rate = json.loads(run.config.study.selection)["chosen"]["learning_rate"] if run in curve else 1e-4
        record = _record(run, min(_accuracy(run) + gain.get((run.method, rate), 0.0), 1.0), study=True)
        record["study"]["selection"]["chosen"]["learning_rate"] = rate
        (run.run_dir / rundir.RESULTS).write_text(json.dumps(record))
    write_report(spec, runs, report, curve)
    markdown = (report / "results.md").read_text()
    biderman = next(line for line in markdown.splitlines() if line.startswith("| Biderman"))
    # lora at 1e-3 (best validation) minus full at 1e-4: 0.78 + 0.04 - 0.80 = +2 pt (rounded to 40 rows: 33/40 - 32/40)
    assert "| not measured |" not in biderman and "lora 0.001 vs full 0.0001" in biderman
    assert "learns +2.5 [" in biderman and "forgetting change +20.0 [" in biderman  # kept 21 vs 15 of 30 probe rows
    assert "## Learning vs forgetting along the learning rate" in markdown and "lora at 0.0001: accuracy" in markdown
    assert len(list(csv.DictReader((report / "results.csv").open()))) == len(runs)  # the cells' runs only
    assert main(["compare", str(spec_path), "--report-dir", str(report), "--verdicts"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{len(runs)} of {len(runs)} runs finished (and {len(curve)} learning-rate curve runs)")
    assert "lora 0.001 vs full 0.0001" in printed
    (report / "results.md").unlink()
    assert main(["compare", str(spec_path), "--report-dir", str(report), "--report-only"]) == 0  # reads the curve too
    assert biderman in (report / "results.md").read_text().splitlines()
