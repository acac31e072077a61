"""A corpus of broken inputs: each stops the run with an error naming the file / row / key and saying what to do, or,
under data.on_bad_sample=skip, is left out and listed in RUN/skipped_samples.json.

Covered elsewhere: unknown config key and wrong type (test_config.py), missing column and unknown label
(test_data.py), stereo 44.1 kHz audio resampled and downmixed (test_audio.py), an adapter whose saved head has
another label count (test_hub.py), zoo downloads with a wrong sha256 (test_zoo.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from hftl.config import load_config
from hftl.errors import DataError, ModelError
from hftl.modalities import get_modality
from hftl.run.data import load_splits
from hftl.run.models import build_model

RATE = 16_000


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...] = ("text", "label")) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def text_rows(n: int = 30) -> list[dict]:
    return [{"text": f"the {'game team win' if i % 2 else 'money market news'} {i}", "label": "ab"[i % 2]} for i in range(n)]


def screened(cfg, skipped=None):
    modality = get_modality(cfg.modality)
    return load_splits(cfg.data, lambda value: modality.check_input(value, cfg), skipped)


# -- text ---------------------------------------------------------------------------------------------------------


def test_empty_text_is_an_error_naming_the_row_and_the_way_out(tmp_path):
    rows = text_rows()
    rows[7]["text"] = "   "
    source = write_csv(tmp_path / "d.csv", rows)
    cfg = load_config(None, [f"data.source={source}"])
    with pytest.raises(DataError, match=r"column 'text' row 7 of split 'train'.*empty text.*data\.on_bad_sample=skip"):
        screened(cfg)


def test_skip_leaves_out_empty_text_and_unknown_labels_and_lists_them(tmp_path):
    rows = text_rows()
    rows[3]["text"] = ""
    rows[5]["label"] = "c"  # outside the declared label set
    source = write_csv(tmp_path / "d.csv", rows)
    skipped: list[dict] = []
    cfg = load_config(None, [f"data.source={source}", "data.labels=[a, b]", "data.on_bad_sample=skip"])
    ds, names = screened(cfg, skipped)
    assert names == ["a", "b"] and sum(len(s) for s in ds.values()) == 28
    assert {(s["row"], s["split"]) for s in skipped} == {(3, "train"), (5, "train")}
    by_row = {s["row"]: s["reason"] for s in skipped}
    assert "unknown label 'c'" in by_row[5]
    # CSV reads an empty field as missing
    assert by_row[3].startswith(("empty or missing input", "empty text"))
    with pytest.raises(DataError, match=r"row 5 of split 'train' \(line 7 of .*d\.csv\): unknown label 'c'.*add it to data\.labels"):
        load_splits(load_config(None, [f"data.source={source}", "data.labels=[a, b]"]).data)


def test_missing_label_is_an_error_or_skipped(tmp_path):
    (tmp_path / "d.jsonl").write_text(
        "\n".join(json.dumps({"text": r["text"], "label": None if i == 4 else r["label"]}) for i, r in enumerate(text_rows()))
    )
    with pytest.raises(DataError, match=r"row 4 of split 'train' \(line 5 of .*d\.jsonl\): missing label; fill it in"):
        load_splits(load_config(None, [f"data.source={tmp_path / 'd.jsonl'}"]).data)
    skipped: list[dict] = []
    ds, names = load_splits(load_config(None, [f"data.source={tmp_path / 'd.jsonl'}", "data.on_bad_sample=skip"]).data,
                            skipped=skipped)  # fmt: skip
    assert names == ["a", "b"] and [s["row"] for s in skipped] == [4]


def test_declared_labels_that_the_data_lacks_are_an_error(tmp_path):
    source = write_csv(tmp_path / "d.csv", text_rows())
    with pytest.raises(DataError, match=r"data\.labels names \['c'\].*no rows.*Remove them from data\.labels"):
        load_splits(load_config(None, [f"data.source={source}", "data.labels=[a, b, c]"]).data)


def test_skip_run_writes_the_skipped_list_and_counts_it(tiny_bert, topic_csv, tmp_path):
    from hftl.recipe import run

    rows = list(csv.DictReader(topic_csv.open()))
    rows[2]["text"] = " "
    rows[9]["label"] = "weather"
    source = write_csv(tmp_path / "topics.csv", rows)
    out = tmp_path / "run"
    results = run(load_config(None, [
        f"model.source={tiny_bert}", f"data.source={source}", "data.labels=[business, film, sport]",
        "data.on_bad_sample=skip", "text.max_length=16", "method.name=linear_probe", "training.epochs=1",
        "training.tracking=none", f"output.dir={out}",
    ]))  # fmt: skip
    listed = json.loads((out / "skipped_samples.json").read_text())
    assert sorted(s["row"] for s in listed) == [2, 9]
    assert results["data"]["skipped_samples"] == 2
    assert json.loads((out / "results.json").read_text())["data"]["skipped_samples"] == 2
    assert sum(results["data"][k] for k in ("train", "validation", "test")) == len(rows) - 2


# -- images -------------------------------------------------------------------------------------------------------


@pytest.fixture
def broken_images(tmp_path) -> Path:
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for kind in ("light", "dark"):
        (root / kind).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(root / kind / f"{i}.png")
    (root / "light" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
    (root / "dark" / "empty.png").write_bytes(b"")
    return root


def test_corrupt_and_zero_byte_images_are_errors_naming_the_file(broken_images):
    cfg = load_config(None, ["modality=vision", f"data.source={broken_images}", "data.input_column=image"])
    with pytest.raises(DataError, match=r"row \d+ of split 'train'.*(corrupt|empty)\.png: not a readable image"):
        screened(cfg)


def test_bad_images_are_skipped_with_their_file_names(broken_images):
    cfg = load_config(None, ["modality=vision", f"data.source={broken_images}", "data.input_column=image",
                             "data.on_bad_sample=skip"])  # fmt: skip
    skipped: list[dict] = []
    ds, _ = screened(cfg, skipped)
    assert sorted(Path(s["input"]).name for s in skipped) == ["corrupt.png", "empty.png"]
    assert sum(len(s) for s in ds.values()) == 12


# -- audio --------------------------------------------------------------------------------------------------------


def audio_csv(folder: Path, broken: dict[str, bytes | np.ndarray]) -> Path:
    """Twelve good clips of two tones plus the broken files (raw bytes, or samples written as a float WAV)."""
    t = np.arange(RATE // 4) / RATE
    rows = []
    for i in range(12):
        name = f"tone_{i}.wav"
        sf.write(folder / name, (0.3 * np.sin(2 * np.pi * (300 if i % 2 else 900) * t)).astype(np.float32), RATE)
        rows.append({"audio": name, "label": "low" if i % 2 else "high"})
    for name, content in broken.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            sf.write(folder / name, content, RATE, subtype="FLOAT")
        rows.append({"audio": name, "label": "low"})
    return write_csv(folder / "clips.csv", rows, ("audio", "label"))


def audio_cfg(source: Path, *extra: str):
    return load_config(None, ["modality=audio", f"data.source={source}", "data.input_column=audio", *extra])


def _truncated_wav() -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(RATE, dtype=np.float32), RATE, format="WAV")
    return buffer.getvalue()[:30]  # cut inside the header


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("zero.wav", b"", "cannot be decoded"),
        ("cut.wav", _truncated_wav(), "cannot be decoded"),
        ("nan.wav", np.array([0.1, np.nan, 0.2] * 1000, dtype=np.float32), "1000 of 3000 samples are NaN"),
    ],
    ids=["zero-byte", "truncated", "nan-samples"],
)
def test_broken_audio_is_an_error_naming_the_file(tmp_path, name, content, message):
    cfg = audio_cfg(audio_csv(tmp_path, {name: content}))
    with pytest.raises(DataError, match=rf"row 12 of split 'train'.*{name}: {message}.*or remove it"):
        screened(cfg)


def test_broken_audio_is_skipped_and_stereo_44k_is_kept_as_mono_16k(tmp_path):
    t = np.arange(44_100 // 2) / 44_100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32) * 0.5
    source = audio_csv(tmp_path, {"zero.wav": b"", "nan.wav": np.full(800, np.nan, dtype=np.float32)})
    sf.write(tmp_path / "stereo.wav", stereo, 44_100)
    with source.open("a") as f:
        f.write("stereo.wav,high\n")
    skipped: list[dict] = []
    ds, _ = screened(audio_cfg(source, "data.on_bad_sample=skip"), skipped)
    assert sorted(Path(s["input"]).name for s in skipped) == ["nan.wav", "zero.wav"]
    kept = [p for s in ds.values() for p in s["audio"]]
    assert "stereo.wav" in kept and len(kept) == 13
    from hftl.modalities.audio import load_audio

    wave = load_audio("stereo.wav", RATE, root=tmp_path)
    assert wave.ndim == 1 and abs(wave.size - RATE // 2) <= 2


# -- models -------------------------------------------------------------------------------------------------------


def test_model_path_that_does_not_exist_says_what_to_name(tmp_path):
    cfg = load_config(None, [f"model.source={tmp_path / 'nowhere'}"])
    with pytest.raises(ModelError, match=r"nowhere does not exist; check the path, or name zoo:NAME"):
        build_model(cfg, get_modality("text"), ["a", "b"])


def test_adapter_whose_base_does_not_match_is_a_model_error(tiny_bert, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=2, target_modules=["query", "value"], modules_to_save=["classifier"])
    get_peft_model(model, lora).save_pretrained(adapter)
    # another BERT with wider layers: the adapter's matrices cannot fit it
    wider = AutoConfig.from_pretrained(tiny_bert, hidden_size=48, num_attention_heads=2)
    other = tmp_path / "wider_bert"
    AutoModelForSequenceClassification.from_config(wider).save_pretrained(other)
    settings = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**settings, "base_model_name_or_path": str(other)}))
    cfg = load_config(None, [f"model.source={adapter}", "method.name=lora"])
    with pytest.raises(ModelError, match=r"does not fit its base .*wider_bert.*point base_model_name_or_path"):
        build_model(cfg, get_modality("text"), ["a", "b", "c"])
