"""Small finished runs of each modality, exported through `hftl export`'s path, for the server tests and benchmark."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from hftl.config import load_config
from tests.helpers.audio_data import TONES, tone, write_tone_csv
from tests.helpers.paths import REPO
from tests.helpers.text_data import write_topic_csv
from tests.helpers.tiny_models import tiny_audio_model, tiny_text_model, tiny_vision_model
from tests.helpers.vision_data import write_pattern_folder

QUICK = ["training.batch_size=16", "training.warmup_ratio=0.0", "training.tracking=none",
         "evaluation.batch_size=32", "output.overwrite=true"]  # fmt: skip
QUICK_EXPORT = ["export.latency_repeats=1", "export.num_threads=1", "export.max_samples=32"]


def _train_and_export(out: Path, overrides: list[str], export: list[str]) -> Path:
    from hftl.deploy.export import export_run
    from hftl.recipe import run

    run(load_config(None, ["training.epochs=1", *QUICK, *overrides, f"output.dir={out}"]))
    export_run(out, [*QUICK_EXPORT, *export])
    return out


def text_run(root: Path) -> Path:
    """A tiny BERT topic classifier, exported fp32 + int8."""
    model = tiny_text_model(root / "tiny_bert")
    data = write_topic_csv(root / "topics.csv")
    overrides = [f"model.source={model}", f"data.source={data}", "text.max_length=16", "training.epochs=3",
                 "training.learning_rate=3e-3"]  # fmt: skip  (confident answers: labels far from ties)
    return _train_and_export(root / "text_run", overrides, [])


def vision_run(root: Path) -> Path:
    """A tiny DINOv2 on grey pattern PNGs, exported fp32."""
    model = tiny_vision_model(root / "tiny_dinov2", image_size=28)
    return _media_run(root, "vision", model, write_pattern_folder(root / "patterns", per_class=10), "image", "vision.image_size=28")


def audio_run(root: Path) -> Path:
    """A tiny Whisper on sine tones (1 s clips), exported fp32."""
    model = tiny_audio_model(root / "tiny_whisper", clip_seconds=1)
    return _media_run(root, "audio", model, write_tone_csv(root / "tones", per_class=10), "audio", "audio.clip_seconds=1")


def _media_run(root: Path, modality: str, model: Path, data: Path, column: str, setting: str) -> Path:
    overrides = [f"modality={modality}", f"model.source={model}", f"data.source={data}", f"data.input_column={column}", setting]
    return _train_and_export(root / f"{modality}_run", overrides, ["export.quantize=false"])


def png_bytes(seed: int = 0, size: int = 28) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(label: str = "high", seconds: float = 0.6, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(TONES[label], seconds, rate), rate, format="WAV")
    return buf.getvalue()


def metric_values(text: str) -> dict[str, float]:
    """Sum of each metric's samples over its labels (enough to check counters and histograms)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            key = name.split("{")[0]
            values[key] = values.get(key, 0.0) + float(value)
    return values


def run_serve_load(args: list[str], out: Path, result_file: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``bench/serve_load.py ARGS --out OUT`` from the repo root: (the finished process, OUT/result_file's JSON)."""
    cmd = [sys.executable, "bench/serve_load.py", *args, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads((out / result_file).read_text())
