"""--quick runs of the speed benchmarks (precision, probe cache, serving ladder, time to accuracy, precision accuracy
over seeds, speed trials) on tiny models.

No timing is asserted; each script must run, print its CPU line and table, and write its JSON.
"""

from __future__ import annotations

import json

import pytest
import torch

from hftl.run import cpu
from tests.helpers.bench_scripts import run_script, table_rows


def _cpu_line(stdout: str) -> None:
    assert stdout.startswith(f"CPU: {cpu.cpu_model()}"), stdout[:300]
    assert "% of peak" in stdout or "no bf16 instructions" in stdout or "test acc" in stdout


@pytest.mark.slow
def test_precision_quick(tiny_configs, tmp_path):  # noqa: F811
    stdout = run_script("precision", [*tiny_configs, "--modalities", "text"], tmp_path)
    _cpu_line(stdout)
    if not cpu.native_bf16():
        assert "no bf16 instructions" in stdout
        return
    rows = table_rows(stdout.split("\n\n")[2], "| modality | run | fp32 samples/s")
    assert [(r[0], r[1].split(",")[0]) for r in rows] == [("text", "lora"), ("text", "full")]
    data = json.loads((tmp_path / "precision.json").read_text())
    for r in data["results"]:
        assert r["train"]["train_flops_per_sample"] > 0 and set(r["memory_mb"]) == {"no", "bf16"}


@pytest.mark.slow
def test_probe_cache_quick(tiny_configs, tmp_path):  # noqa: F811
    stdout = run_script("probe_cache", [*tiny_configs, "--modalities", "text,vision"], tmp_path)
    _cpu_line(stdout)
    rows = table_rows(stdout.split("\n\n")[2], "| modality | step-by-step s")
    assert [r[0] for r in rows] == ["text", "vision"]
    for row in rows:  # same test accuracy from the cached probe (vision: its flip augmentation is turned off)
        step, cached = row[-1].split(" / ")
        assert step == cached


@pytest.mark.slow
def test_ladder_quick(tiny_configs, tmp_path):  # noqa: F811
    pytest.importorskip("openvino", reason="the ladder's OpenVINO rows need hftl[openvino]")
    stdout = run_script("ladder", tiny_configs, tmp_path)
    _cpu_line(stdout)
    rows = table_rows(stdout.split("\n\n")[2], "| backend | test acc")
    names = [r[0] for r in rows]
    assert {"PyTorch fp32", "ORT fp32", "ORT int8", "OpenVINO fp32", "OpenVINO int8"} <= set(names)
    assert ("PyTorch bf16" in names) == cpu.native_bf16()
    assert ("PyTorch CUDA fp32" in names) == torch.cuda.is_available()  # the GPU rows where torch sees a device
    for row in rows:  # each median within the interquartile range of its timed calls
        for median, spread in ((row[2], row[3]), (row[6], row[7])):
            q1, q3 = map(float, spread.split("-"))
            assert q1 - 0.01 <= float(median) <= q3 + 0.01, row  # printed to 2 decimals
    data = json.loads((tmp_path / "ladder.json").read_text())
    assert data["openvino_int8_kernels"] and data["ort_int8_kernels"].startswith(cpu.int8_isa())


@pytest.mark.slow
def test_time_to_accuracy_quick(tiny_configs, tmp_path):  # noqa: F811
    stdout = run_script("time_to_accuracy", [*tiny_configs, "--modalities", "text", "--seeds", "1,2"], tmp_path)
    _cpu_line(stdout)
    rows = table_rows(stdout.split("\n\n")[2], "| modality | seed")
    assert [r[0] for r in rows] == ["text", "text"]
    spread = table_rows(stdout.split("\n\n")[4], "| modality | seeds | hftl train s median (min-max)")
    assert [r[:2] for r in spread] == [["text", "2"]]
    low, high = spread[0][2].split(" (")[1].rstrip(")").split("-")
    assert float(low) == pytest.approx(min(float(r[3]) for r in rows), abs=0.01)
    assert float(high) == pytest.approx(max(float(r[3]) for r in rows), abs=0.01)


@pytest.mark.slow
def test_precision_accuracy_quick(tiny_configs, tmp_path):  # noqa: F811
    if not cpu.native_bf16():
        pytest.skip("this CPU has no bf16 instructions: the script refuses to compare (tested in its message)")
    stdout = run_script("precision_accuracy", [*tiny_configs, "--modalities", "text", "--seeds", "1,2"], tmp_path)
    _cpu_line(stdout)
    rows = table_rows(stdout.split("\n\n")[2], "| recipe | fp32 test acc per seed")
    assert [r[0] for r in rows] == ["text lora", "text full"]
    data = json.loads((tmp_path / "precision_accuracy.json").read_text())
    for runs in data["results"].values():  # both precisions ran for both seeds, and the runs record what ran
        assert sorted((r["precision"], r["seed"]) for r in runs) == [("bf16", 1), ("bf16", 2), ("no", 1), ("no", 2)]
    assert set(data["verdicts"]) == {"text lora", "text full"}


@pytest.mark.slow
def test_precision_accuracy_compares_attention_kernels(tiny_configs, tmp_path):  # noqa: F811
    args = [*tiny_configs, "--modalities", "text", "--full", "", "--seeds", "1,2", "--compare", "attention"]
    stdout = run_script("precision_accuracy", args, tmp_path)
    _cpu_line(stdout)
    rows = table_rows(stdout.split("\n\n")[2], "| recipe | sdpa test acc per seed | eager test acc per seed")
    assert [r[0] for r in rows] == ["text lora"]
    data = json.loads((tmp_path / "attention_accuracy.json").read_text())
    runs = data["results"]["text lora"]
    assert sorted((r["variant"], r["seed"]) for r in runs) == [("eager", 1), ("eager", 2), ("sdpa", 1), ("sdpa", 2)]
    assert data["key"] == "model.attn_implementation" and set(data["verdicts"]) == {"text lora"}


@pytest.mark.slow
def test_speed_trials_quick(tiny_configs, tmp_path):  # noqa: F811
    from hftl.config import load_config

    text_config = next(a.split("=", 1)[1] for a in tiny_configs if a.startswith("text="))
    short = load_config(text_config).data.source  # the tiny text recipe's data doubles as the short texts
    stdout = run_script("speed_trials", [*tiny_configs, "--short-texts", short], tmp_path)
    assert stdout.startswith(f"CPU: {cpu.cpu_model()}"), stdout[:300]
    rows = table_rows(stdout.split("\n\n")[2], "| trial | setting | variant")
    assert {(r[0], r[2]) for r in rows} >= {("padding", "dynamic + length-grouped"), ("attention", "eager"),
                                            ("compile", "torch.compile")}  # fmt: skip
    eager = [r for r in rows if r[:1] == ["attention"] and r[2] == "eager"]
    for row in eager:  # eager and SDPA attention compute the same function
        assert float(row[-1].rsplit(" ", 1)[1]) < 1e-3
