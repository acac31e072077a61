"""The `hftl` command as a user runs it: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys

from hftl.cli import main


def hftl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hftl.cli", *args], capture_output=True, text=True, timeout=300)


def test_config_error_is_one_clear_line_and_exit_2():
    proc = hftl("train", "recipes/configs/text/minilm_lora.yaml", "training.lr=1e-3")
    assert proc.returncode == 2
    assert "unknown key 'training.lr'" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_config_file():
    assert main(["train", "no/such/config.yaml"]) == 2


def test_config_prints_resolved_values(capsys):
    assert main(["config", "recipes/configs/text/minilm_lora.yaml", "method.lora.r=4"]) == 0
    out = capsys.readouterr().out
    assert "r: 4" in out and "source: zoo:minilm-l6" in out


def test_zoo_list_names_the_entries(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "minilm-l6" in out and "bbc-news" in out


def test_export_of_unfinished_run_is_an_error(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "not a finished run" in capsys.readouterr().err


def test_train_nproc_below_one_is_refused_before_any_work(capsys):
    assert main(["train", "recipes/configs/text/minilm_lora.yaml", "--nproc", "0"]) == 2
    assert "--nproc 0: give the number of processes to start, 1 or more" in capsys.readouterr().err
