"""The new zoo backbones on their real weights: each conversion's check passes, the same check fails on random
weights (so it proves something), depth-cut candidates keep the real first layers, and hftl's loop fine-tunes each
new backbone for a couple of steps on real data (Fashion-MNIST grey images included)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import hftl.models  # noqa: F401  (registers hftl's own architectures with the Auto classes)
from hftl import zoo
from hftl.config import load_config
from hftl.errors import ZooError

pytestmark = pytest.mark.slow


def _info(path: Path) -> dict:
    return json.loads((path / zoo.MARKER).read_text())["info"]


@pytest.fixture
def home(real_home, monkeypatch):
    monkeypatch.setenv("HFTL_HOME", str(real_home))
    return real_home


def _random_copy(src: Path, dest: Path, auto) -> Path:
    """The entry's folder with its weights replaced by a random init of the same architecture."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.safetensors", zoo.MARKER))
    torch.manual_seed(0)
    config = auto.from_pretrained(src).config
    type(auto.from_pretrained(src))(config).save_pretrained(dest)
    return dest


def test_paraphrase_minilm_l3(home, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from hftl.zoo.minilm import embedding_check
    from hftl.zoo.paraphrase_minilm import vocabulary_check

    path = zoo.prepare("paraphrase-minilm-l3")
    info = _info(path)
    assert info["parity"]["max_abs_diff"] <= 1e-4 and info["check"]["margin"] >= 0.3
    assert info["parameters"] == 17_241_984 and info["vocabulary"]["vocab_size"] == 30_522
    assert embedding_check(path, "paraphrase-minilm-l3")["margin"] == info["check"]["margin"]
    words = AutoModel.from_pretrained(path).embeddings.word_embeddings.weight.detach().numpy()
    tokenizer = AutoTokenizer.from_pretrained(zoo.prepare("minilm-l6"))
    vocabulary_check(words, tokenizer)
    with pytest.raises(ZooError, match="vocabulary does not fit"):  # another vocabulary order: neighbours are lost
        vocabulary_check(words[np.random.default_rng(0).permutation(len(words))], tokenizer)
    with pytest.raises(ZooError, match="weights look wrong"):
        embedding_check(_random_copy(path, tmp_path / "random", AutoModel), "random")


@pytest.mark.parametrize("variant", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_efficientnet_lite(home, variant, tmp_path):
    from transformers import AutoModelForImageClassification

    from hftl.zoo.efficientnet_lite import imagenet_check

    path = zoo.prepare(variant)
    info = _info(path)
    assert info["check"]["top1_class"] == "palace"
    assert info["resolution"] == {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}[variant]
    assert (path / "model.safetensors").is_file() and not list(path.glob("*.pth"))
    assert imagenet_check(path, variant)["china.jpg"] == info["check"]["china.jpg"]
    with pytest.raises(ZooError, match="weights look wrong"):
        imagenet_check(_random_copy(path, tmp_path / "random", AutoModelForImageClassification), "random")


def test_resemblyzer(home, tmp_path):
    from transformers import AutoModel

    from hftl.zoo.resemblyzer import speaker_check

    path = zoo.prepare("resemblyzer")
    info = _info(path)
    assert info["check"]["margin"] >= 0.05 and info["parameters"] == 1_423_616
    with pytest.raises(ZooError, match="weights look wrong"):
        speaker_check(_random_copy(path, tmp_path / "random", AutoModel))


@pytest.mark.parametrize(("entry", "k", "modality"), [("minilm-l6", 3, "text"), ("dinov2-small", 6, "vision"),
                                                      ("whisper-tiny", 2, "audio")])  # fmt: skip
def test_real_truncated_candidates_keep_the_real_first_layers(home, entry, k, modality):
    from hftl.modalities import get_modality
    from hftl.run.models import build_model

    def built(suffix):
        cfg = load_config(None, [f"modality={modality}", f"model.source=zoo:{entry}{suffix}", "audio.clip_seconds=2"])
        return build_model(cfg, get_modality(modality), ["a", "b"]).model.state_dict()

    full, cut = built(""), built(f"@L{k}")
    layer_words = ("layer.", "layers.")
    kept = [key for key in cut if any(w in key for w in layer_words)]
    assert kept and all(int(key.split(w)[1].split(".")[0]) < k for key in kept for w in layer_words if w in key)
    for key in cut:
        if not key.startswith(("classifier", "projector")):
            assert torch.equal(cut[key], full[key]), key


def _run(tmp_path, *overrides):
    from hftl.recipe import run

    base = ["training.max_steps=2", "training.batch_size=8", "training.warmup_ratio=0.0", "training.tracking=none",
            "evaluation.batch_size=16", "data.max_eval_samples=32", "evaluation.transferability=false",
            f"output.dir={tmp_path / 'run'}"]  # fmt: skip
    results = run(load_config(None, [*base, *overrides]))
    assert np.isfinite(results["test"]["accuracy"])
    return json.loads((tmp_path / "run" / "results.json").read_text())


def test_paraphrase_fine_tunes_through_the_loop(home, topic_csv, tmp_path):
    record = _run(tmp_path, "model.source=zoo:paraphrase-minilm-l3", f"data.source={topic_csv}", "method.name=lora",
                  "text.max_length=32")  # fmt: skip
    assert record["run"]["backbone"]["name"] == "paraphrase-minilm-l3" and record["run"]["backbone"]["layers_kept"] == 3


def test_efficientnet_fine_tunes_on_grey_fashion_mnist(home, tmp_path):
    record = _run(tmp_path, "modality=vision", "model.source=zoo:efficientnet-lite0", "data.source=zoo:fashion-mnist",
                  "data.input_column=image", "data.max_train_samples=40", "vision.image_size=64", "method.name=full")  # fmt: skip
    assert record["run"]["backbone"]["name"] == "efficientnet-lite0"


def test_resemblyzer_fine_tunes_on_spoken_words(home, tmp_path):
    record = _run(tmp_path, "modality=audio", "model.source=zoo:resemblyzer", "data.source=zoo:speech-commands-tts",
                  "data.input_column=audio", "data.max_train_samples=40", "audio.clip_seconds=1",
                  "method.name=linear_probe")  # fmt: skip
    assert record["run"]["backbone"]["name"] == "resemblyzer"


def test_crepe_tiny(home, tmp_path):
    from transformers import AutoModelForAudioClassification

    from hftl.zoo.crepe import pitch_check

    path = zoo.prepare("crepe-tiny")
    info = _info(path)
    assert max(abs(c) for c in info["check"]["cents_off"]) <= 50 and info["backbone_parameters"] == 394_032
    with pytest.raises(ZooError, match="weights look wrong"):
        pitch_check(_random_copy(path, tmp_path / "random", AutoModelForAudioClassification))


def test_crepe_fine_tunes_on_spoken_words(home, tmp_path):
    record = _run(tmp_path, "modality=audio", "model.source=zoo:crepe-tiny@L4", "data.source=zoo:speech-commands-tts",
                  "data.input_column=audio", "data.max_train_samples=40", "audio.clip_seconds=1", "method.name=lora")  # fmt: skip
    assert record["run"]["backbone"]["name"] == "crepe-tiny@L4" and record["run"]["backbone"]["layers_kept"] == 4
