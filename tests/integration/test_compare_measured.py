"""A small real `hftl compare` grid with every measurement on, text and audio (a tiny Whisper WITH a decoder, so the
WER part is reached), through the CLI; the report is read back: results.csv, the written findings, the figures."""

from __future__ import annotations

import base64
import csv
import math
import re

import pytest
import yaml

from hftl import zoo
from hftl.cli import main
from tests.helpers.audio_data import write_tone_csv
from tests.helpers.text_data import write_topic_csv
from tests.helpers.tiny_models import tiny_asr_model

pytestmark = pytest.mark.slow  # 3 real runs with transferability, shift and forgetting: about a minute


def test_measured_grid_report_reads_back(tiny_bert, tmp_path, real_home, monkeypatch):
    monkeypatch.setenv("HFTL_HOME", str(real_home))
    asr = tiny_asr_model(tmp_path / "tiny_asr", tokenizer_from=zoo.prepare("whisper-tiny"))
    zoo.prepare("fortunes")  # the text forgetting probe
    common = {"training": {"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0, "tracking": "none"},
              "output": {"save_merged": False}}  # fmt: skip
    text = tmp_path / "text.yaml"
    text.write_text(yaml.safe_dump({"modality": "text", "model": {"source": str(tiny_bert)},
                                    "data": {"source": str(write_topic_csv(tmp_path / "topics.csv"))},
                                    "text": {"max_length": 16}, **common}))  # fmt: skip
    audio = tmp_path / "audio.yaml"
    audio.write_text(yaml.safe_dump({"modality": "audio", "model": {"source": str(asr)},
                                     "data": {"source": str(write_tone_csv(tmp_path / "tones", per_class=10)),
                                              "input_column": "audio"},
                                     "audio": {"clip_seconds": 1}, **common}))  # fmt: skip
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "measured", "methods": ["linear_probe", "full"], "shots_per_class": [6], "seeds": [0], "max_parallel": 1,
        "measure": {"transferability": True, "shift": True, "forgetting": True},
        "overrides": ["evaluation.probe_max_samples=30"],
        "datasets": [{"name": "topics", "recipe": str(text)}, {"name": "tones", "recipe": str(audio)}],
    }, sort_keys=False))  # fmt: skip
    report = tmp_path / "report"
    assert main(["compare", str(spec), "--report-dir", str(report)]) == 0

    rows = {(r["dataset"], r["method"]): r for r in csv.DictReader((report / "results.csv").open())}
    assert set(rows) == {(d, m) for d in ("topics", "tones") for m in ("linear_probe", "full")}
    for row in rows.values():
        assert math.isfinite(float(row["logme"])) and row["shift_mean_accuracy"] != ""
    for method in ("linear_probe", "full"):
        t, a = rows["topics", method], rows["tones", method]
        assert t["knn_before"] and t["knn_after"] and t["cka"] and not t["wer_after"]
        assert a["wer_before"] and a["wer_after"] and a["cka"]  # Whisper: WER of the source decoder, not k-NN
    assert float(rows["topics", "linear_probe"]["cka"]) == pytest.approx(1.0)  # a frozen backbone cannot forget
    assert float(rows["topics", "full"]["cka"]) < 0.999  # full fine-tuning moved the backbone (the probe: 1.0)

    page = (report / "report.html").read_text()
    assert "word error rate of the original decoder with the trained encoder" in page
    assert "probe-task accuracy after minus before training" in page and "Forgot least" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 4 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert (report / "plots").is_dir() and any(p.name.startswith("forgetting") or "wer" in p.name
                                               for p in (report / "plots").iterdir())  # fmt: skip
