"""hftl compare: spec checks, grid expansion, skip / rerun, aggregation, the written summary, and the HTML report in Chromium."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hftl import files
from hftl.compare import aggregate, compare, effects, findings, stats
from hftl.compare.grid import expand
from hftl.compare.report import write_report
from hftl.compare.runner import run_state, run_status
from hftl.compare.spec import load_spec
from hftl.config import save_config
from hftl.errors import ConfigError, HftlError
from hftl.run import rundir
from hftl.run.record import DataInfo, RunInfo, RunRecord, TrainInfo, write_record
from tests.helpers.paths import REPO

SPECS = sorted((REPO / "recipes" / "compare").glob("*.yaml"))


@pytest.fixture
def tiny_recipe(tmp_path, tiny_bert, topic_csv) -> Path:
    """A text recipe on the tiny BERT and the topic CSV: a complete run in a few seconds."""
    recipe = {
        "modality": "text",
        "model": {"source": str(tiny_bert)},
        "data": {"source": str(topic_csv), "max_train_samples": 60},  # the grid's sizes replace this
        "text": {"max_length": 16},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 3e-3, "warmup_ratio": 0.0, "tracking": "none"},
        "output": {"save_merged": False},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def write_spec(path: Path, **spec) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def tiny_spec(tmp_path: Path, recipe: Path, **extra) -> Path:
    dataset = {"name": "topics", "recipe": str(recipe), **extra.pop("dataset", {})}
    fields = {"methods": ["linear_probe", "lp_ft"], "shots_per_class": [5], "seeds": [0], "datasets": [dataset],
              "overrides": ["method.lp_ft.probe_epochs=1"], **extra}  # fmt: skip
    return write_spec(tmp_path / "spec.yaml", **fields)


# -- the spec and its expansion ----------------------------------------------------------------------------------


def test_grid_expansion_counts_names_and_overrides(tmp_path, tiny_recipe):
    spec_path = tiny_spec(
        tmp_path, tiny_recipe, methods=["scratch", "lora"], shots_per_class=[4, "all"], seeds=[0, 1],
        dataset={"learning_rates": {"lora": 0.002}, "method_overrides": {"lora": ["method.lora.r=2"]},
                 "overrides": ["text.max_length=12"]},
    )  # fmt: skip
    runs = expand(load_spec(spec_path), tmp_path / "report")
    assert len(runs) == 2 * 2 * 2
    assert [r.name for r in runs[:4]] == [
        "topics__tiny_bert0__scratch__shots-4__seed-0", "topics__tiny_bert0__lora__shots-4__seed-0",
        "topics__tiny_bert0__scratch__shots-all__seed-0", "topics__tiny_bert0__lora__shots-all__seed-0",
    ]  # fmt: skip
    assert [r.seed for r in runs] == [0] * 4 + [1] * 4  # seeds outermost: a cut-short grid has whole seeds
    for run in runs:
        cfg = run.config
        assert run.run_dir == tmp_path / "report" / "runs" / run.name and cfg.name == run.name
        assert cfg.method.name == run.method and cfg.training.seed == run.seed
        assert cfg.data.shots_per_class == (None if run.shots == "all" else run.shots)
        assert cfg.data.max_train_samples is None  # the recipe's own subsampling gives way to the grid's sizes
        assert cfg.text.max_length == 12 and cfg.output.overwrite
        if run.method == "lora":
            assert cfg.training.learning_rate == pytest.approx(0.002) and cfg.method.lora.r == 2
        else:
            assert cfg.training.learning_rate == pytest.approx(3e-3) and cfg.method.lora.r == 16
    # deterministic: the same spec expands to the same configs
    again = expand(load_spec(spec_path), tmp_path / "report")
    assert [r.config for r in again] == [r.config for r in runs]


def test_backbones_multiply_the_grid_and_need_distinct_names(tmp_path, tiny_recipe, tiny_bert):
    other = shutil.copytree(tiny_bert, tmp_path / "other_bert")
    spec = load_spec(tiny_spec(tmp_path, tiny_recipe, dataset={"backbones": [str(tiny_bert), str(other)]}))
    runs = expand(spec, tmp_path / "r")
    assert len(runs) == 4 and {r.backbone for r in runs} == {str(tiny_bert), str(other)}
    assert {r.config.model.source for r in runs} == {str(tiny_bert), str(other)}
    clash = shutil.copytree(tiny_bert, tmp_path / "elsewhere" / tiny_bert.name)
    spec = load_spec(tiny_spec(tmp_path, tiny_recipe, dataset={"backbones": [str(tiny_bert), str(clash)]}))
    with pytest.raises(ConfigError, match="share a short name"):
        expand(spec, tmp_path / "r")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": ["lora"]}, r"unknown key 'method' \(.*spec.yaml\); known keys here: .*methods"),
        ({"dataset": {"recipie": "x.yaml"}}, r"unknown key 'datasets\[0\]\.recipie'"),
        ({"dataset": {"learning_rates": {"lorax": 1e-3}}}, r"unknown key 'datasets\[0\]\.learning_rates\.lorax'"),
        ({"methods": ["lora", "dora"]}, r"'dora' is not one of"),
        ({"shots_per_class": [4, "most"]}, r"shots_per_class\[1\]"),
        ({"seeds": [0, 0]}, r"seeds has duplicates"),
        ({"max_parallel": 0}, r"max_parallel must be >= 1"),
        ({"dataset": {"name": "a/b"}}, r"datasets\[0\]: name must be"),
    ],
)
def test_spec_errors_name_the_key(tmp_path, tiny_recipe, change, message):
    with pytest.raises(ConfigError, match=message):
        load_spec(tiny_spec(tmp_path, tiny_recipe, **change))


def test_bad_run_override_names_the_data_set_and_run(tmp_path, tiny_recipe):
    spec = load_spec(tiny_spec(tmp_path, tiny_recipe, dataset={"method_overrides": {"lp_ft": ["training.lr=1"]}}))
    with pytest.raises(ConfigError, match=r"dataset topics, run topics__tiny_bert0__lp_ft__shots-5__seed-0: unknown key 'training.lr'"):
        expand(spec, tmp_path / "r")


def test_no_datasets_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="list at least one data set"):
        load_spec(write_spec(tmp_path / "spec.yaml", methods=["lora"]))


STUDY_SPECS = [p for p in SPECS if p.name in ("default.yaml", "full.yaml")]


def _load_shipped(path: Path):
    try:
        return load_spec(path)
    except ConfigError as err:  # full.yaml names zoo19's candidates; a zoo without them says which (the spec check)
        if "is not a model of the zoo" in str(err):
            pytest.skip(f"{path.name}: this zoo lacks a candidate backbone it names: {err}")
        raise


@pytest.mark.parametrize("path", STUDY_SPECS, ids=lambda p: p.name)
def test_shipped_specs_expand_across_all_modalities(path, tmp_path):
    spec = _load_shipped(path)
    runs = expand(spec, tmp_path)
    cells = sum(len(ds.backbones or [None]) for ds in spec.datasets) * len(spec.methods) * len(spec.shots_per_class)
    assert len(runs) == cells * len(spec.seeds) and len(spec.seeds) >= 3
    assert {r.modality for r in runs} == {"text", "vision", "audio"}
    assert set(spec.methods) == {"scratch", "linear_probe", "lora", "full", "lp_ft"}
    # converged runs: early stopping on validation under a declared cap; each seed draws its own subset
    # (the default spec's scratch is the fixed-budget variant, labelled so: 60 steps cannot converge it)
    early = [r for r in runs if not (path.name == "default.yaml" and r.method == "scratch")]
    assert all(r.config.training.early_stopping_patience and r.config.training.eval_steps < r.config.training.max_steps for r in early)
    assert all(r.config.training.early_stopping_patience is None for r in runs if r not in early)
    assert all(r.config.data.subset_seed == r.seed and r.config.study.per_row for r in runs)
    assert f"hftl compare recipes/compare/{path.name}" in "\n".join(path.read_text().splitlines()[:5])


def test_default_spec_is_75_runs_after_18_selection_runs():
    from hftl.compare.selection import selection_trials

    spec = load_spec(REPO / "recipes" / "compare" / "default.yaml")
    assert len(expand(spec, Path("unused"))) == 75 and len(spec.seeds) == 5
    assert sum(len(t) for t in selection_trials(spec, Path("unused")).values()) == 18


def test_full_spec_is_the_study_the_issue_asks_for():
    spec = _load_shipped(REPO / "recipes" / "compare" / "full.yaml")
    assert len(spec.seeds) >= 5 and spec.executor in ("slurm", "ray") and set(spec.curve_methods) == {"lora", "full"}
    for ds in spec.datasets:
        assert len(ds.backbones) >= 5
        assert all(isinstance(getattr(ds.learning_rates, m), list) for m in ("scratch", "lora", "full", "lp_ft"))


# -- skip / rerun --------------------------------------------------------------------------------------------------


def test_run_state_compares_the_saved_config(tmp_path, tiny_recipe):
    run = expand(load_spec(tiny_spec(tmp_path, tiny_recipe)), tmp_path / "r")[0]
    assert run_state(run) == "new"
    run.run_dir.mkdir(parents=True)
    save_config(run.config, run.run_dir / rundir.CONFIG)
    assert run_state(run) == "unfinished"  # started, cut short before results.json
    files.write_json_atomic(run.run_dir / rundir.RESULTS, {})
    assert run_state(run) == "done"
    changed = expand(load_spec(tiny_spec(tmp_path, tiny_recipe, dataset={"overrides": ["text.max_length=12"]})), tmp_path / "r")[0]
    assert changed.name == run.name and run_state(changed) == "changed"


def test_a_key_added_to_the_schema_since_the_run_counts_only_when_set(tmp_path, tiny_recipe):
    """A run saved before model.attn_implementation existed ran as null does now (nothing passed to transformers):
    it stays done; a spec that sets the key asks for something the run did not do."""
    run = expand(load_spec(tiny_spec(tmp_path, tiny_recipe)), tmp_path / "r")[0]
    run.run_dir.mkdir(parents=True)
    old = run.config.to_dict()
    assert old["model"].pop("attn_implementation") is None
    (run.run_dir / rundir.CONFIG).write_text(yaml.safe_dump(old))
    files.write_json_atomic(run.run_dir / rundir.RESULTS, {})
    assert run_status(run) == ("done", [])
    eager = expand(load_spec(tiny_spec(tmp_path, tiny_recipe, overrides=["method.lp_ft.probe_epochs=1", "model.attn_implementation=eager"])), tmp_path / "r")[0]
    assert eager.name == run.name and run_status(eager) == ("changed", ["model.attn_implementation"])


def test_the_same_run_folder_named_another_way_is_no_config_change(tmp_path, tiny_recipe, monkeypatch):
    """A report rebuilt with an absolute --report-dir (or from a copy of the report) reads runs made under a relative
    one: output.dir differs as a string, the folder is the same; any other key still counts."""
    monkeypatch.chdir(tmp_path)
    relative = expand(load_spec(tiny_spec(tmp_path, tiny_recipe)), Path("r"))[0]
    relative.run_dir.mkdir(parents=True)
    save_config(relative.config, relative.run_dir / rundir.CONFIG)
    files.write_json_atomic(relative.run_dir / rundir.RESULTS, {})
    absolute = expand(load_spec(tiny_spec(tmp_path, tiny_recipe)), tmp_path / "r")[0]
    assert str(absolute.config.output.dir) != str(relative.config.output.dir)
    assert run_status(absolute) == ("done", [])
    other = expand(load_spec(tiny_spec(tmp_path, tiny_recipe, dataset={"overrides": ["text.max_length=12"]})), tmp_path / "r")[0]
    assert other.name == relative.name and run_status(other) == ("changed", ["text.max_length"])


@pytest.mark.slow
def test_grid_runs_skips_finished_and_reruns_changed_or_unfinished(tmp_path, tiny_recipe):
    lines: list[str] = []
    report = tmp_path / "report"
    spec = tiny_spec(tmp_path, tiny_recipe, max_parallel=2)
    page = compare(spec, report_dir=report, echo=lines.append)
    assert page == report / "report.html" and page.is_file()
    assert lines[0] == "2 runs: 0 done already, 2 to run" and lines[1].startswith("executor: local, 2 at a time")
    assert all(", cpu " in line for line in lines[2:4]) and lines[4].startswith("ran 2 runs in")
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert [(r["method"], r["shots_per_class"], r["train_size"]) for r in rows] == [("linear_probe", "5", "15"), ("lp_ft", "5", "15")]
    probe_run, lp_ft_run = (report / "runs" / f"topics__tiny_bert0__{m}__shots-5__seed-0" for m in ("linear_probe", "lp_ft"))
    assert not (lp_ft_run / "checkpoints").exists() and not (lp_ft_run / "probe_phase").exists()  # finished: not kept
    assert (report / "logs" / f"{lp_ft_run.name}.log").is_file() and (report / "configs" / f"{lp_ft_run.name}.yaml").is_file()
    stamp = (lp_ft_run / "results.json").stat().st_mtime_ns

    # the same spec again: nothing runs
    lines.clear()
    compare(spec, report_dir=report, echo=lines.append)
    assert lines[0].startswith("2 runs: 2 done already, 0 to run")

    # a changed learning rate for one method reruns that method's run only; a run without results.json reruns too
    (lp_ft_run / "results.json").unlink()
    spec = tiny_spec(tmp_path, tiny_recipe, max_parallel=2, dataset={"learning_rates": {"linear_probe": 0.05}})
    lines.clear()
    compare(spec, report_dir=report, echo=lines.append)
    assert lines[0].startswith("2 runs: 0 done already, 2 to run")
    assert yaml.safe_load((probe_run / "config.yaml").read_text())["training"]["learning_rate"] == pytest.approx(0.05)
    assert (lp_ft_run / "results.json").stat().st_mtime_ns != stamp
    lines.clear()
    compare(spec, report_dir=report, echo=lines.append)
    assert lines[0].startswith("2 runs: 2 done already")


def test_a_failing_run_is_reported_and_the_others_still_count(tmp_path, tiny_recipe):
    spec = tiny_spec(tmp_path, tiny_recipe, methods=["linear_probe"], dataset={"overrides": ["data.input_column=missing"]})
    with pytest.raises(HftlError, match=r"(?s)1 of 1 runs failed.*error: data.input_column: column 'missing'") as info:
        compare(spec, report_dir=tmp_path / "report", echo=lambda _: None)
    assert "topics__tiny_bert0__linear_probe__shots-5__seed-0.log" in str(info.value)
    assert "0 of 1 runs finished" in (tmp_path / "report" / "report.html").read_text()


# -- aggregation, the summary, the report ----------------------------------------------------------------------


def finish(run, accuracy: float, **extra) -> None:
    """Make run look finished: its config and made-up results."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    save_config(run.config, run.run_dir / rundir.CONFIG)
    record = RunRecord(
        run=RunInfo(name=run.name, modality=run.modality, method=run.method, model=run.backbone, dataset=run.dataset,
                    seed=run.seed),
        params={"trainable": 100, "total": 1000},
        data=DataInfo(labels=["a", "b", "c"], sizes={"train": 15}),
        train=TrainInfo(runtime_s=2.0, samples_per_second=7.5, steps=1, total_steps=1),
        test={"accuracy": accuracy, "f1_macro": accuracy - 0.05},
        measurements=extra,
    )  # fmt: skip
    write_record(run.run_dir, record)


def test_rows_and_mean_std_over_seeds(tmp_path, tiny_recipe):
    runs = expand(load_spec(tiny_spec(tmp_path, tiny_recipe, methods=["lora"], shots_per_class=["all"], seeds=[0, 1, 2])),
                  tmp_path / "report")  # fmt: skip
    accuracies = [0.5, 0.6, 0.9]
    for run, acc in zip(runs, accuracies, strict=True):
        finish(run, acc, **({"shift": {"mean_accuracy": 0.4}} if run.seed == 0 else {}))
    stale = expand(load_spec(tiny_spec(tmp_path, tiny_recipe, methods=["lora"], shots_per_class=[4])), tmp_path / "report")[0]
    finish(stale, 0.99)
    stale.config.training.seed = 7  # the spec now asks for something else: its results are not the measured ones
    rows = aggregate.collect([*runs, stale])
    aggregate.write_csv(rows, tmp_path / "results.csv")
    with (tmp_path / "results.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == readme_columns()
        read = list(reader)
    assert [r["test_accuracy"] for r in read] == ["0.5", "0.6", "0.9"]
    assert read[0]["shots_per_class"] == "all" and read[0]["shift_mean_accuracy"] == "0.4" and read[1]["shift_mean_accuracy"] == ""
    assert read[0]["logme"] == "" and read[0]["run_dir"] == str(runs[0].run_dir)

    (cell,) = aggregate.cells(rows)
    # by hand: mean 2.0 / 3; deviations -1/6, -1/15, 7/30; sum of squares 0.08666..., / (3 - 1) -> std 0.20817
    assert cell["n"] == 3
    assert cell["test_accuracy_mean"] == pytest.approx(0.666667, abs=1e-6)
    assert cell["test_accuracy_std"] == pytest.approx(math.sqrt(0.0866667 / 2), abs=1e-6)
    assert cell["shift_mean_accuracy_mean"] == pytest.approx(0.4) and cell["shift_mean_accuracy_std"] is None
    assert cell["logme_mean"] is None
    # the t interval over 3 seeds would be 0.667 +- 0.517 = [0.150, 1.184], past 1; accuracy gets Wilson at the
    # effective n instead (test_stats: [0.215578, 0.935710]); seconds the geometric mean, t on their logs
    table = aggregate.markdown_table([cell])
    assert "| 0.667 [0.216, 0.936] |" in table and "| 0.400 (no interval: 1 run) |" in table
    assert cell["accuracy_ci"].method == stats.EFFECTIVE_WILSON and cell["runtime_ci"].method == stats.GEOMETRIC_T
    assert aggregate.mean_std([]) == (None, None, 0) and aggregate.mean_std([0.3, None]) == (0.3, None, 1)


def synthetic_grid(tmp_path: Path, tiny_recipe: Path):
    """A two-modality grid (tiny text recipe and the shipped vision recipe) with made-up results for every run,
    every measurement included, so that each figure and summary has something to show."""
    spec = load_spec(write_spec(
        tmp_path / "spec.yaml", name="synthetic", methods=["scratch", "linear_probe", "lora", "full", "lp_ft"],
        shots_per_class=[4, 16], seeds=[0, 1, 2], measure={"transferability": True, "shift": True, "forgetting": True},
        datasets=[{"name": "topics", "recipe": str(tiny_recipe)},
                  {"name": "fashion", "recipe": str(REPO / "recipes/configs/vision/dinov2_lora.yaml")}],
    ))  # fmt: skip
    runs = expand(spec, tmp_path / "report")
    base = {"scratch": 0.3, "linear_probe": 0.6, "lora": 0.75, "full": 0.8, "lp_ft": 0.82}
    for run in runs:
        acc = base[run.method] + (0.1 if run.shots == 16 else 0.0) + 0.01 * run.seed
        shift_drop = {"full": 0.25, "lp_ft": 0.15}.get(run.method, 0.2)
        knn_after = {"scratch": 0.3, "linear_probe": 0.9, "lora": 0.85, "full": 0.6, "lp_ft": 0.7}[run.method]
        finish(
            run,
            acc,
            shift={"variants": {"blur": {"accuracy": acc - shift_drop}}, "mean_accuracy": acc - shift_drop},
            forgetting={"probe": "digits", "knn_accuracy_before": 0.9, "knn_accuracy_after": knn_after, "cka": knn_after},
            transferability={"logme": acc * 2 - 1, "knn_accuracy": acc, "n_train": 15, "seconds": 1.0},
        )
    return spec, runs


def test_summary_is_written_from_the_numbers(tmp_path, tiny_recipe):
    _, runs = synthetic_grid(tmp_path, tiny_recipe)
    rows = aggregate.collect(runs)
    gains = effects.transfer_gains(rows)
    assert len(gains) == 16  # 2 data sets x 2 sizes x 4 transfer methods, each against scratch
    lp_ft = [g for g in gains if g["method"] == "lp_ft"]
    assert all(g["gain"].value == pytest.approx(0.52) and g["gain"].n == 3 for g in lp_ft)  # paired over 3 seeds
    text = findings.summary(rows)
    (topics_line,) = [s for s in text["Where transfer helped (each method minus scratch, paired)"]
                      if s.startswith("text (topics") and "at 4 rows" in s]  # fmt: skip
    assert "lp_ft +52.0 [+52.0, +52.0] pt" in topics_line and "Whether scratch trained to convergence is not recorded" in topics_line
    # shifted accuracy of these runs is not on the in-distribution rows: no LP-FT claim is made from it
    assert "same test rows" in text["LP-FT vs full fine-tuning under shift"][0]
    (forget_line,) = [s for s in text["Forgetting (paired change on the probe rows)"] if s.startswith("vision") and "at 4" in s]
    assert "linear_probe (control) +0.0" in forget_line and "full -30.0" in forget_line and "scratch" not in forget_line
    assert "Forgot least" not in " ".join(text["Forgetting (paired change on the probe rows)"])
    # one backbone per data set: nothing to rank, and no pooled tau over runs
    (ranking_line,) = text["Transferability: ranking candidate backbones"]
    assert "at most 1 backbone(s)" in ranking_line and "tau" not in ranking_line


def test_report_files_and_embedded_images(tmp_path, tiny_recipe):
    spec, runs = synthetic_grid(tmp_path, tiny_recipe)
    page = write_report(spec, runs, tmp_path / "report")
    body = page.read_text()
    assert body.count('<img src="data:image/png;base64,') == 5  # size, params, time, shift, forgetting (no WER here)
    assert "src=\"http" not in body and "<link" not in body  # self-contained
    assert sorted(p.name for p in (tmp_path / "report" / "plots").iterdir()) == [
        "accuracy_vs_params.png", "accuracy_vs_size.png", "forgetting.png", "shift.png", "training_time.png"]  # fmt: skip
    markdown = (tmp_path / "report" / "results.md").read_text()
    # lp_ft at 4/class: 0.82 + 0.01 * seed, s = 0.01 (t: 0.830 +- 0.0248); Wilson at n* = 0.83 * 0.17 / (0.0001 / 3)
    # = 4233: centre (0.83 + 0.002187) / 1.004374 = 0.828564, half 4.302653 * 0.0057957 / 1.004374 = 0.024828
    assert "0.830 [0.804, 0.853]" in markdown
    assert "## Reviewer's checklist" in markdown and "## Verdicts against the literature" in markdown


def test_report_renders_in_headless_chromium(tmp_path, tiny_recipe):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make system-deps installs it; CI has it)")
    spec, runs = synthetic_grid(tmp_path, tiny_recipe)
    page = write_report(spec, runs, tmp_path / "report")
    # A copy with a probe that writes what the browser rendered into the DOM once everything has loaded.
    probe = """<script>window.addEventListener("load", () => { document.body.setAttribute("data-rendered", JSON.stringify({
      images: [...document.images].map(i => [i.naturalWidth, i.naturalHeight, Math.round(i.getBoundingClientRect().width)]),
      tables: [...document.querySelectorAll("table")].map(t => [t.rows.length, Math.round(t.getBoundingClientRect().height)])
    })); });</script></body>"""
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", probe))
    dom = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1280,2000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    import html as html_lib
    import re

    rendered = json.loads(html_lib.unescape(re.search(r'data-rendered="([^"]*)"', dom).group(1)))
    assert len(rendered["images"]) == 5
    assert all(w > 100 and h > 100 and shown > 100 for w, h, shown in rendered["images"]), rendered["images"]
    cells = len(aggregate.cells(aggregate.collect(runs)))
    # header + 8 claims x 2 modalities; header + 2 data sets x 2 sizes x 4 methods minus scratch; header + every cell
    assert [rows for rows, _ in rendered["tables"]] == [1 + 16, 1 + 16, 1 + cells]
    assert all(height > 50 for _, height in rendered["tables"])


def test_cli_dry_run_lists_runs_and_runs_nothing(tmp_path, tiny_recipe, capsys):
    from hftl.cli import main

    spec = tiny_spec(tmp_path, tiny_recipe, seeds=[0, 1])
    assert main(["compare", str(spec), "--report-dir", str(tmp_path / "report"), "--max-parallel", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("new        topics__tiny_bert0__linear_probe__shots-5__seed-0")
    assert out[-1] == f"4 runs, 0 done; would run 4, 3 at a time, and report to {tmp_path / 'report'}"
    assert not (tmp_path / "report").exists()
    assert main(["compare", str(tmp_path / "missing.yaml")]) == 2
    assert "compare spec not found" in capsys.readouterr().err


def readme_columns() -> list[str]:
    """The results.csv columns as the README's table documents them, in order (what users script against)."""
    readme = (REPO / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `results.csv` |"))
    return re.findall(r"`([a-z0-9_]+)`", row.split("|")[2])


def test_default_spec_scores_shifts_its_modalities_make():
    """A misspelt evaluation.shift_variants name fails only after training: the shipped spec's names are checked here."""
    from hftl.modalities import shifts
    from hftl.modalities.speech_shifts import respoken_plan

    known = {
        "vision": {shifts.corruption_name(n, s) for n in shifts.CORRUPTIONS for s in range(1, 6)},
        "audio": {f"snr_{snr:g}db_noise" for snr in shifts.AUDIO_SNR_DB} | {"reverb", "lowpass_2khz", "telephone_band"}
        | set(respoken_plan("en-us+m3", 175, 50)),
        "text": {"first_sentence"},
    }  # fmt: skip
    runs = expand(load_spec(REPO / "recipes" / "compare" / "default.yaml"), Path("unused"))
    named = {r.modality: r.config.evaluation.shift_variants for r in runs}
    assert named["vision"] == ["gaussian_noise@3", "contrast@3"] and len(named["audio"]) == 3
    for modality, names in named.items():
        assert set(names or known[modality]) <= known[modality], modality


def test_default_spec_probes_are_fitted_on_cached_features():
    """The header promises an L-BFGS probe with C swept on validation: that needs the feature cache, which augmentation
    switches off (the probe then trains loop steps at an untuned rate)."""
    from hftl.evaluation.cached_probe import cache_off_reason

    runs = expand(load_spec(REPO / "recipes" / "compare" / "default.yaml"), Path("unused"))
    probing = [r for r in runs if r.method in ("linear_probe", "lp_ft")]
    assert {r.modality for r in probing} == {"text", "vision", "audio"}
    assert [(r.name, cache_off_reason(r.config)) for r in probing if cache_off_reason(r.config)] == []


def test_small_claim_specs_measure_what_their_verdict_rows_need():
    """he_small.yaml and biderman_small.yaml are shaped as the He and Biderman verdict rows require: He: full and
    scratch of one backbone at 2 sizes, scratch under early stopping (not a fixed budget), rates chosen on validation;
    Biderman: LoRA and full at 2+ rates each on the curve, forgetting measured, the probe as the zero-change control."""
    from hftl.compare.selection import curve_runs, selection_trials

    he = load_spec(REPO / "recipes" / "compare" / "he_small.yaml")
    runs = expand(he, Path("unused"))
    assert set(he.methods) == {"scratch", "full"} and len(he.shots_per_class) >= 2 and len(he.seeds) >= 3
    assert len({r.backbone for r in runs}) == 1 and he.resample_subsets
    assert all(r.config.training.early_stopping_patience and r.config.training.eval_steps < r.config.training.max_steps
               for r in runs)  # fmt: skip
    assert all(isinstance(getattr(he.datasets[0].learning_rates, m), list) for m in he.methods)
    assert sum(len(t) for t in selection_trials(he, Path("unused")).values()) == 2 * 2 * len(he.shots_per_class)

    bid = load_spec(REPO / "recipes" / "compare" / "biderman_small.yaml")
    assert set(bid.curve_methods) == {"lora", "full"} and "linear_probe" in bid.methods and "scratch" not in bid.methods
    assert bid.measure.forgetting and len(bid.seeds) >= 5  # the protocol's 5 seeds
    curve = curve_runs(bid, Path("unused"))
    rates = {m: {r.config.training.learning_rate for r in curve if r.method == m} for m in bid.curve_methods}
    assert all(len(v) >= 3 for v in rates.values()) and len(curve) == sum(len(v) for v in rates.values()) * len(bid.seeds)
    for path in ("he_small.yaml", "biderman_small.yaml"):
        header = (REPO / "recipes" / "compare" / path).read_text().split("\nname:")[0]
        assert f"hftl compare recipes/compare/{path}" in header and "CPU" in header and "CANNOT conclude" in header
