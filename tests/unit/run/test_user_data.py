"""A user's own data as they have it: HF imagefolder / audiofolder layouts with metadata files and linked class
folders, and the bad inputs that used to slip through (a truncated WAV, a latin-1 CSV, a CSV with many defects,
a skip that empties a split). Every data set here is written by the test itself."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from hftl.config import load_config
from hftl.errors import DataError
from hftl.modalities import get_modality
from hftl.modalities.audio import read_audio
from hftl.modalities.wav_header import declared_wav_frames
from hftl.run.data import load_splits

RATE = 16_000


def screened(cfg, skipped=None):
    modality = get_modality(cfg.modality)
    return load_splits(cfg.data, lambda value: modality.check_input(value, cfg), skipped)


def write_png(path: Path, level: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(level)
    Image.fromarray(np.clip(level + rng.integers(-10, 10, (12, 12)), 0, 255).astype(np.uint8)).save(path)
    return path


def write_tone(path: Path, hz: float, seconds: float = 0.25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(RATE * seconds)) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), RATE)
    return path


# -- 1. HF layouts ------------------------------------------------------------------------------------------------


def test_imagefolder_with_root_metadata_csv_takes_labels_splits_and_extra_columns_from_it(tmp_path):
    root = tmp_path / "pets"
    rows = []
    for split, n in (("train", 6), ("test", 3)):
        for cls, level in (("cat", 40), ("dog", 200)):
            for i in range(n):
                name = f"{split}/{cls}/{i}.png"
                write_png(root / name, level + i)
                # the metadata's label wins over the folder name: here it spells the classes differently
                rows.append({"file_name": name, "label": cls.upper(), "split": split, "photographer": f"p{i % 2}"})
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cfg = load_config(None, ["modality=vision", f"data.source={root}", "data.input_column=image"])
    ds, names = screened(cfg)
    assert names == ["CAT", "DOG"]
    assert len(ds["test"]) == 6 and len(ds["train"]) + len(ds["validation"]) == 12
    assert "photographer" in ds["train"].column_names
    first = ds["test"][0]
    assert isinstance(first["image"], Image.Image) and first["image"].size == (12, 12)


def test_audiofolder_with_metadata_jsonl_per_split_folder_and_folder_labels(tmp_path):
    root = tmp_path / "speech"
    for split in ("train", "validation"):
        lines = []
        for cls, hz in (("low", 300), ("high", 900)):
            for i in range(4):
                write_tone(root / split / cls / f"{i}.wav", hz + 10 * i)
                lines.append(json.dumps({"file_name": f"{cls}/{i}.wav", "speaker": f"s{i}"}))
        (root / split / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    cfg = load_config(None, ["modality=audio", f"data.source={root}", "data.input_column=audio"])
    ds, names = screened(cfg)
    assert names == ["high", "low"]  # no label column in the metadata: the class folders name them
    assert len(ds["validation"]) == 8 and "speaker" in ds["train"].column_names
    assert all(not Path(p).is_absolute() for p in ds["train"]["audio"])  # relative: the folder can move


def test_linked_class_folders_are_followed_and_a_link_loop_is_refused(tmp_path):
    store = tmp_path / "store"
    for cls, level in (("bright", 220), ("dark", 30)):
        for i in range(5):
            write_png(store / cls / f"{i}.png", level + i)
    root = tmp_path / "linked"
    root.mkdir()
    for cls in ("bright", "dark"):
        (root / cls).symlink_to(store / cls, target_is_directory=True)
    cfg = load_config(None, ["modality=vision", f"data.source={root}", "data.input_column=image"])
    ds, names = screened(cfg)
    assert names == ["bright", "dark"] and sum(len(s) for s in ds.values()) == 10
    (store / "dark" / "loop").symlink_to(store, target_is_directory=True)
    with pytest.raises(DataError, match=r"symbolic link loop"):
        screened(cfg)


def test_metadata_naming_a_missing_file_names_the_metadata_line(tmp_path):
    root = tmp_path / "imgs"
    write_png(root / "a" / "0.png", 10)
    (root / "metadata.csv").write_text("file_name,label\na/0.png,x\na/1.png,y\n")
    cfg = load_config(None, ["modality=vision", f"data.source={root}", "data.input_column=image"])
    with pytest.raises(DataError, match=r"metadata\.csv line 3: file_name a/1\.png does not exist"):
        screened(cfg)


# -- 5. bad inputs ------------------------------------------------------------------------------------------------


def _cut_wav(path: Path, seconds: float = 1.0) -> Path:
    buffer = io.BytesIO()
    sf.write(buffer, (0.2 * np.ones(int(RATE * seconds))).astype(np.float32), RATE, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])  # the header still declares the whole second
    return path


def test_truncated_wav_is_a_bad_sample_naming_the_file_and_the_frames(tmp_path):
    cut = _cut_wav(tmp_path / "cut.wav")
    whole = write_tone(tmp_path / "whole.wav", 440)
    assert declared_wav_frames(cut) == RATE and declared_wav_frames(whole) == RATE // 4
    read_audio(str(whole))  # an intact file is untouched
    with pytest.raises(DataError, match=r"cut\.wav: truncated: its header declares 16000 frames \(1\.00 s\) but it holds"):
        read_audio(str(cut))
    rows = [{"audio": f"t{i}.wav", "label": "ab"[i % 2]} for i in range(30)]
    for i in range(30):
        write_tone(tmp_path / f"t{i}.wav", 300 + 200 * (i % 2))
    rows.append({"audio": "cut.wav", "label": "a"})
    with (tmp_path / "clips.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["audio", "label"])
        writer.writeheader()
        writer.writerows(rows)
    skipped: list[dict] = []
    cfg = load_config(None, ["modality=audio", f"data.source={tmp_path / 'clips.csv'}", "data.input_column=audio",
                             "data.on_bad_sample=skip"])  # fmt: skip
    screened(cfg, skipped)
    assert [Path(s["input"]).name for s in skipped] == ["cut.wav"] and "truncated" in skipped[0]["reason"]
    assert skipped[0]["line"] == 32  # the header and 30 rows before it


def test_latin1_csv_names_the_byte_and_line_and_reads_with_data_encoding(tmp_path):
    rows = ["text,label"] + [f"{'café crème' if i % 2 else 'thé noir'} {i},{'ab'[i % 2]}" for i in range(20)]
    source = tmp_path / "menu.csv"
    source.write_bytes("\n".join(rows).encode("latin-1"))
    cfg = load_config(None, [f"data.source={source}"])
    with pytest.raises(DataError, match=r"menu\.csv: not valid utf-8 text: byte 0xe9 at byte offset \d+ \(line 2\).*data\.encoding=latin-1"):
        load_splits(cfg.data)
    ds, names = load_splits(load_config(None, [f"data.source={source}", "data.encoding=latin-1"]).data)
    texts = [t for s in ds.values() for t in s["text"]]
    assert names == ["a", "b"] and len(texts) == 20 and any("café" in t for t in texts)
    with pytest.raises(DataError, match=r"data\.encoding: unknown encoding 'latin-42'"):
        load_splits(load_config(None, [f"data.source={source}", "data.encoding=latin-42"]).data)


def test_a_csv_with_many_defects_reports_every_bad_row_with_its_editor_line(tmp_path):
    lines = ["text,label"]
    for i in range(30):
        lines.append(f"words of row {i},{'ab'[i % 2]}")
    lines[4] = ",a"  # data row 3 (0-based; the header is line 1), line 5: empty text
    lines[9] = '"a text over\ntwo lines",c'  # data row 8, line 10: unknown label; its record spans two lines
    lines[12] = "words,"  # data row 11, line 14 (the quoted field above took two lines): missing label
    source = tmp_path / "defects.csv"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        screened(load_config(None, [f"data.source={source}", "data.labels=[a, b]"]))
    message = str(caught.value)
    assert message.startswith("3 bad rows in ")
    assert re.search(r"column 'text' row 3 of split 'train' \(line 5 of .*defects\.csv\): empty", message)
    assert re.search(r"column 'label' row 8 of split 'train' \(line 10 of .*\): unknown label 'c'", message)
    assert re.search(r"column 'label' row 11 of split 'train' \(line 14 of .*\): missing label", message)
    file_lines = source.read_text().splitlines()
    assert file_lines[13] == "words,"  # the editor's line 14 is that row


def test_many_defects_are_capped_in_the_message(tmp_path):
    source = tmp_path / "labels.csv"
    source.write_text("text,label\n" + "".join(f"t{i},{'a' if i < 5 else 'zz'}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"35 bad rows .*\n(.*\n){19}.*\n  \.\.\. and 15 more"):
        load_splits(load_config(None, [f"data.source={source}", "data.labels=[a]"]).data)


def test_a_skip_that_empties_the_validation_split_is_an_error_naming_it_before_training(tmp_path):
    root = tmp_path / "clips"
    for cls, hz in (("low", 300), ("high", 900)):
        for i in range(3):
            write_tone(root / "train" / cls / f"{i}.wav", hz)
        (root / "validation" / cls).mkdir(parents=True)
        (root / "validation" / cls / "0.wav").write_bytes(b"")  # every validation clip is broken
    cfg = load_config(None, ["modality=audio", f"data.source={root}", "data.input_column=audio", "data.on_bad_sample=skip"])
    with pytest.raises(DataError, match=r"split 'validation' has no rows: 2 rows in .*; 2 with a bad input left out"):
        screened(cfg)


def test_a_recipe_run_whose_split_empties_stops_before_any_model_is_built(tiny_bert, tmp_path):
    from hftl.recipe import run

    rows = "".join(f"word {i},{'ab'[i % 2]}\n" for i in range(12))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("text,label\n" + rows)
    (tmp_path / "data" / "validation.csv").write_text("text,label\n ,a\n ,b\n")  # whitespace-only texts
    out = tmp_path / "run"
    cfg = load_config(None, [f"model.source={tiny_bert}", f"data.source={tmp_path / 'data'}", "data.on_bad_sample=skip",
                             "training.epochs=1", f"output.dir={out}"])  # fmt: skip
    with pytest.raises(DataError, match=r"split 'validation' has no rows"):
        run(cfg)
    assert not (out / "results.json").exists() and not (out / "checkpoints").exists()

