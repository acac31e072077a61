"""Running the benchmark scripts' --quick mode on tiny models and data, and reading the tables they print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hftl.config import load_config, save_config
from tests.helpers.audio_data import write_tone_csv
from tests.helpers.paths import REPO
from tests.helpers.text_data import write_topic_csv
from tests.helpers.tiny_models import tiny_audio_model, tiny_text_model, tiny_vision_model
from tests.helpers.vision_data import write_pattern_folder

COMMON = ["method.name=lora", "method.lora.r=4", "training.batch_size=8", "training.tracking=none"]


def write_tiny_configs(root: Path) -> list[str]:
    """--config arguments pointing every modality at a tiny model and a tiny data set, all written under ``root``."""
    images = write_pattern_folder(root / "images", per_class=16)
    settings = {
        "text": [f"model.source={tiny_text_model(root / 'bert')}", f"data.source={write_topic_csv(root / 'topics.csv')}",
                 "text.max_length=16"],
        "vision": [f"model.source={tiny_vision_model(root / 'dinov2')}", f"data.source={images}",
                   "data.input_column=image", "vision.image_size=28", "vision.augment.hflip_prob=0.5"],
        "audio": [f"model.source={tiny_audio_model(root / 'whisper')}",
                  f"data.source={write_tone_csv(root / 'tones')}", "data.input_column=audio",
                  "audio.clip_seconds=1", "audio.time_masks=1"],
    }  # fmt: skip
    args = []
    for modality, overrides in settings.items():
        path = root / f"{modality}.yaml"
        save_config(load_config(None, [f"modality={modality}", *overrides, *COMMON]), path)
        args += ["--config", f"{modality}={path}"]
    return args


def run_script(name: str, args: list[str], out: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "bench" / f"{name}.py"), "--quick", "--threads", "1", "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def table_rows(stdout: str, header_start: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert lines and lines[0].startswith(header_start), stdout
    assert set(lines[1].replace("|", "")) == {"-"}
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
