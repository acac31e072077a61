"""Grid executors on real engines: a local Ray cluster (a worker killed mid-grid), submitit's local executor and a
one-node Slurm cluster run the same grid as the local pool and write the same results.csv rows (timings aside)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from hftl.compare import compare
from hftl.compare.executors.task import RunTask, run_task
from tests.helpers.engines import ray_head, slurm_cluster

TIMEOUT_S = 600  # a bound on any one grid here: a hang fails the test instead of the suite


@pytest.fixture(scope="module")
def grid_recipe(tmp_path_factory, tiny_bert, topic_csv) -> Path:
    recipe = {
        "modality": "text",
        "model": {"source": str(tiny_bert)},
        "data": {"source": str(topic_csv)},
        "text": {"max_length": 16},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 3e-3, "warmup_ratio": 0.0, "tracking": "none"},
        "output": {"save_merged": False},
    }
    path = tmp_path_factory.mktemp("grid") / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def write_grid_spec(tmp: Path, recipe: Path, **extra) -> Path:
    """2 methods x 2 seeds on the tiny BERT; one thread a run everywhere, so every executor computes the same."""
    spec = {"methods": ["linear_probe", "lora"], "shots_per_class": [5], "seeds": [0, 1], "max_parallel": 2,
            "retries": 1, "resources": {"cpus": 1, "time_min": 10},
            "datasets": [{"name": "topics", "recipe": str(recipe)}], **extra}  # fmt: skip
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def result_rows(report_dir: Path) -> list[str]:
    """results.csv lines without the timing column, run folders relative to the report: comparable across runs."""
    lines = (report_dir / "results.csv").read_text().splitlines()
    header = lines[0].split(",")
    timing = header.index("train_runtime_s")
    rows = []
    for line in lines:
        cells = line.split(",")
        cells[timing] = ""
        rows.append(",".join(cells).replace(str(report_dir), "REPORT"))
    return rows


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory, grid_recipe) -> list[str]:
    tmp = tmp_path_factory.mktemp("local")
    compare(write_grid_spec(tmp, grid_recipe), report_dir=tmp / "report", echo=lambda _: None)
    rows = result_rows(tmp / "report")
    assert len(rows) == 1 + 4
    return rows


def test_a_worker_that_cannot_see_the_report_dir_says_so(tmp_path):
    task = RunTask("x", tmp_path / "elsewhere" / "x.yaml", tmp_path / "x.log", tmp_path / "run", tmp_path, 1, False)
    result = run_task(task)
    assert not result.ok and "cannot see" in result.error and "storage every worker mounts" in result.error


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ray_worker_training(driver: threading.Thread, timeout: float = 300) -> int:
    """The pid of a Ray worker process whose child is training a grid run."""
    deadline = time.time() + timeout
    while time.time() < deadline and driver.is_alive():
        for entry in Path("/proc").iterdir():
            pid = int(entry.name) if entry.name.isdigit() else 0
            if "ray::run_task" in _cmdline(pid) and any("hftl.cli train" in _cmdline(c) for c in _children(pid)):
                return pid
        time.sleep(0.5)
    raise AssertionError("no Ray worker started a training run")


@pytest.mark.slow
def test_ray_cluster_runs_the_grid_through_a_killed_worker_and_a_rerun_skips_it(tmp_path, grid_recipe, local_rows):
    with ray_head(num_cpus=2) as address:
        spec = write_grid_spec(tmp_path, grid_recipe, executor="ray", ray={"address": address})
        lines: list[str] = []
        errors: list[BaseException] = []

        def drive() -> None:
            try:
                compare(spec, report_dir=tmp_path / "report", echo=lines.append)
            except BaseException as err:  # noqa: BLE001 - re-raised in the test below
                errors.append(err)

        driver = threading.Thread(target=drive)
        driver.start()
        worker = _ray_worker_training(driver)
        assert not errors, errors
        os.kill(worker, signal.SIGKILL)  # the worker dies mid-run; its training child dies with it
        driver.join(timeout=TIMEOUT_S)
        assert not driver.is_alive() and not errors, (errors, lines)
        log = "\n".join(lines)
        assert "FAILED" in log and "retrying 1 failed run(s)" in log and "(attempt 2)" in log, log
        assert "executor: Ray cluster 127.0.0.1" in log
        assert result_rows(tmp_path / "report") == local_rows

        lines.clear()
        compare(spec, report_dir=tmp_path / "report", echo=lines.append)
        assert lines[0] == "4 runs: 4 done already, 0 to run"


@pytest.mark.slow
def test_submitit_local_executor_runs_the_same_grid(tmp_path, grid_recipe, local_rows):
    spec = write_grid_spec(tmp_path, grid_recipe, executor="slurm", slurm={"cluster": "local", "array_parallelism": 2})
    lines: list[str] = []
    compare(spec, report_dir=tmp_path / "report", echo=lines.append)
    assert "executor: submitit local executor, job arrays of at most 2 at once" in "\n".join(lines)
    assert result_rows(tmp_path / "report") == local_rows
    assert len(list((tmp_path / "report" / "slurm").glob("*/*_log.out"))) == 4  # submitit's own log per job


@pytest.mark.slow
def test_slurm_cluster_runs_the_same_grid_as_job_arrays(tmp_path, grid_recipe, local_rows):
    with slurm_cluster() as env:
        spec = write_grid_spec(
            tmp_path, grid_recipe, executor="slurm", resources={"cpus": 1, "time_min": 10, "memory_gb": 1},
            slurm={"partition": "debug", "array_parallelism": 2},
        )  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "hftl.cli", "compare", str(spec), "--report-dir", str(tmp_path / "report")],
            env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "executor: Slurm, job arrays of at most 2 at once" in done.stdout
        jobs = sorted(p.name for p in (tmp_path / "report" / "slurm").iterdir() if p.is_dir() and "_" in p.name)
        assert len(jobs) == 4 and len({j.split("_")[0] for j in jobs}) == 1, jobs  # one array: JOBID_0 .. JOBID_3
        assert all(list((tmp_path / "report" / "slurm" / j).glob("*_log.out")) for j in jobs)  # a log per array task
        assert result_rows(tmp_path / "report") == local_rows


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"executor": "k8s"}, r"executor .*'k8s' is not one of \['local', 'ray', 'slurm'\]"),
        ({"retries": -1}, r"retries must be >= 0"),
        ({"resources": {"cpus": 0}}, r"resources.cpus must be >= 1"),
        ({"resources": {"disk_gb": 5}}, r"unknown key 'resources.disk_gb'"),
        ({"slurm": {"additional": ["account"]}}, r"slurm.additional: 'account' is not key=value"),
        ({"tune": {"params": {"training.learning_rate": {"low": 0, "high": 1, "log": True}}}}, r"tune.*low > 0"),
    ],
)
def test_executor_and_tune_spec_errors_name_the_key(tmp_path, grid_recipe, change, message):
    from hftl.compare.spec import load_spec
    from hftl.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_spec(write_grid_spec(tmp_path, grid_recipe, **change))
