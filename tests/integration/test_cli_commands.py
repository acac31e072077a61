"""The commands users type, through the CLI: train with export on, summary, export/onnx.py, predict (three
modalities, fp32 and int8, against PyTorch's own labels), push --what onnx, zoo prepare, advise, Parquet / TSV data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hftl.cli import main
from hftl.config import load_config
from tests.helpers.audio_data import RATE, TONES, tone, write_tone_csv
from tests.helpers.paths import REPO
from tests.helpers.run_model import torch_labels
from tests.helpers.text_data import write_topic_csv
from tests.helpers.tiny_models import tiny_audio_model, tiny_vision_model
from tests.helpers.vision_data import vision_overrides, write_pattern_folder

TOKEN = "hf_testCliCommandsLoopbackHub0123456789abcd"
TEXTS = ["the team won the game", "money and the market", "a film with a great actor", "the song and the plot"]


def cli_labels(capsys, onnx_dir: Path, inputs: list[str], *flags: str) -> list[str]:
    """`hftl predict` run as a user runs it; the label of each input from its printed table."""
    capsys.readouterr()
    assert main(["predict", str(onnx_dir), *flags, *inputs]) == 0
    header, *lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert header.split()[:2] == ["label", "score"] and len(lines) == len(inputs), lines
    assert all(line.rstrip().endswith(str(Path(i).absolute()) if Path(i).exists() else i[:60]) for line, i in zip(lines, inputs, strict=True))
    return [line.split()[0] for line in lines]


@pytest.fixture(scope="module")
def text_run(tiny_bert, tmp_path_factory) -> Path:
    """`hftl train ... export.enabled=true`: the run exports itself at the end."""
    data = write_topic_csv(tmp_path_factory.mktemp("topics") / "topics.csv")
    out = tmp_path_factory.mktemp("cli") / "text"
    assert main([
        "train", f"model.source={tiny_bert}", f"data.source={data}", "text.max_length=16", "method.name=full",
        "training.epochs=4", "training.batch_size=16", "training.learning_rate=3e-3", "training.warmup_ratio=0.0",
        "training.tracking=none", f"output.dir={out}", "export.enabled=true", "export.latency_repeats=2",
        "export.max_int8_accuracy_drop=0.1",  # 24 test rows: one int8 flip is 4 points
    ]) == 0  # fmt: skip
    return out


def test_train_with_export_enabled_writes_a_checked_export(text_run):
    report = json.loads((text_run / "onnx" / "export_report.json").read_text())
    assert report["parity"]["fp32_max_abs_diff"] <= 1e-4
    assert (text_run / "onnx" / "model.onnx").is_file() and (text_run / "onnx" / "model_quantized.onnx").is_file()


def test_summary_prints_the_run(text_run, capsys):
    results = json.loads((text_run / "results.json").read_text())
    capsys.readouterr()
    assert main(["summary", str(text_run)]) == 0
    out = capsys.readouterr().out
    assert f"{results['test']['accuracy']:.4f}" in out and "lora" not in out.lower().split("method")[0]
    assert "full" in out and "fp32_max_abs_diff" in out or "parity" in out.lower()


def test_export_script_is_the_cli_export(text_run, tmp_path):
    run_copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(text_run), str(run_copy)], check=True)
    subprocess.run(["rm", "-rf", str(run_copy / "onnx")], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(REPO / "export" / "onnx.py"), str(run_copy), "export.latency_repeats=2"],
                          capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((run_copy / "onnx" / "export_report.json").read_text())
    assert report["parity"]["fp32_max_abs_diff"] <= 1e-4
    broken = subprocess.run([sys.executable, str(REPO / "export" / "onnx.py"), str(tmp_path / "nothing")],
                            capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert broken.returncode == 2 and "Traceback" not in broken.stderr and "nothing" in broken.stderr


@pytest.mark.parametrize("flags", [(), ("--quantized",)], ids=["fp32", "int8"])
def test_predict_text_equals_pytorch(text_run, capsys, flags):
    assert cli_labels(capsys, text_run / "onnx", TEXTS, *flags) == torch_labels(text_run, TEXTS)


def test_predict_image_and_audio_equal_pytorch(tmp_path, capsys):
    from hftl.recipe import run

    images = write_pattern_folder(tmp_path / "patterns", per_class=12)
    vision = tmp_path / "vision"
    run(load_config(None, vision_overrides(tiny_vision_model(tmp_path / "vit", num_labels=3, image_size=28), images,
                                           vision, "method.name=full")))  # fmt: skip
    tones = write_tone_csv(tmp_path / "tones", per_class=12)
    audio = tmp_path / "audio"
    run(load_config(None, [
        "modality=audio", f"model.source={tiny_audio_model(tmp_path / 'whisper', num_labels=3)}", f"data.source={tones}",
        "data.input_column=audio", "audio.clip_seconds=1", "method.name=full", "training.epochs=4",
        "training.batch_size=8", "training.learning_rate=5e-3", "training.warmup_ratio=0.0", "training.tracking=none",
        f"output.dir={audio}",
    ]))  # fmt: skip
    pngs = [str(images / kind / "00.png") for kind in ("bright", "dark", "stripes")]
    wavs = []
    for name, freq in TONES.items():
        sf.write(tmp_path / f"{name}.wav", tone(freq, 0.7), RATE)
        wavs.append(str(tmp_path / f"{name}.wav"))
    for run_dir, inputs in ((vision, pngs), (audio, wavs)):
        assert main(["export", str(run_dir), "export.latency_repeats=2"]) == 0
        expected = torch_labels(run_dir, inputs)
        assert cli_labels(capsys, run_dir / "onnx", inputs) == expected
        int8 = cli_labels(capsys, run_dir / "onnx", inputs, "--quantized")
        report = json.loads((run_dir / "onnx" / "export_report.json").read_text())
        # int8 passed the export's accuracy gate; on these well-separated inputs it agrees with PyTorch.
        assert sum(a == b for a, b in zip(int8, expected, strict=True)) >= len(inputs) - 1, (int8, expected, report["accuracy"])


def test_push_onnx_private_revision_through_the_cli(text_run, tmp_path, monkeypatch, capsys):
    from tests.helpers.hub_server import HubServer, use_loopback_hub

    with HubServer(tmp_path / "hub", TOKEN) as hub:
        use_loopback_hub(monkeypatch, hub.url, tmp_path / "cache")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        assert main(["push", str(text_run), "--repo-id", "alice/cli-onnx", "--what", "onnx", "--private",
                     "--revision", "v1"]) == 0  # fmt: skip
        repo = hub.repos["alice/cli-onnx"]
        assert repo.private
        files = hub.files("alice/cli-onnx", revision="v1")
        assert {"model.onnx", "model_quantized.onnx", "README.md"} <= set(files)
        assert files["model.onnx"] == (text_run / "onnx" / "model.onnx").read_bytes()
        assert "model.onnx" not in hub.files("alice/cli-onnx", revision="main")  # the branch, not main


def test_zoo_prepare_through_the_cli(capsys):
    capsys.readouterr()
    assert main(["zoo", "prepare", "digits"]) == 0  # sklearn's digits: no download, a real prepare
    out = capsys.readouterr().out
    assert "digits" in out
    assert main(["zoo", "prepare", "no-such-entry"]) == 2


def test_advise_on_vision_and_audio_data(tmp_path, capsys):
    images = write_pattern_folder(tmp_path / "patterns", per_class=10)
    vit_a = tiny_vision_model(tmp_path / "vit_a", num_labels=3, image_size=28)
    capsys.readouterr()
    assert main(["advise", str(images), "--models", str(vit_a), "vision.image_size=28"]) == 0
    out = capsys.readouterr().out
    assert str(vit_a) in out and "logme" in out.lower()
    tones = write_tone_csv(tmp_path / "tones", per_class=8)
    whisper = tiny_audio_model(tmp_path / "whisper", num_labels=3)
    assert main(["advise", str(tones), "--models", str(whisper), "data.input_column=audio", "audio.clip_seconds=1"]) == 0
    out = capsys.readouterr().out
    assert str(whisper) in out and "logme" in out.lower()


@pytest.mark.slow
def test_advise_on_zoo_sources(capsys):
    capsys.readouterr()
    assert main(["advise", "zoo:bbc-news", "--models", "zoo:minilm-l6", "--max-samples", "200"]) == 0
    out = capsys.readouterr().out
    assert "zoo:minilm-l6" in out and "logme" in out.lower()


@pytest.mark.parametrize("suffix", ["parquet", "tsv"])
def test_train_from_parquet_and_tsv(suffix, tiny_bert, tmp_path):
    rows = pd.read_csv(write_topic_csv(tmp_path / "topics.csv"))
    path = tmp_path / f"topics.{suffix}"
    if suffix == "parquet":
        rows.to_parquet(path)
    else:
        rows.to_csv(path, sep="\t", index=False)
    out = tmp_path / "run"
    assert main(["train", f"model.source={tiny_bert}", f"data.source={path}", "text.max_length=16", "training.epochs=1",
                 "training.tracking=none", f"output.dir={out}"]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["data"]["labels"]) == ["business", "film", "sport"]
    assert results["data"]["train"] + results["data"]["validation"] + results["data"]["test"] == len(rows)
    assert np.isfinite(results["test"]["loss"])
