"""Users' own speech recognition data: CSV / JSONL tables and audiofolders; bad rows named before any work."""

from __future__ import annotations

import csv
import shutil

import pytest

from hftl.config import load_config
from hftl.errors import DataError
from hftl.modalities import get_modality
from hftl.run.transcribed_data import load_transcribed_splits
from tests.helpers.asr_data import write_tone, write_transcribed_table


def _config(source, *extra: str):
    return load_config(None, ["modality=audio", "task=speech_recognition", "evaluation.metrics=[wer,cer]",
                              "training.metric_for_best=wer", "training.greater_is_better=false",
                              f"data.source={source}", "data.input_column=audio", "data.label_column=transcript",
                              *extra])  # fmt: skip


def _load(cfg):
    audio = get_modality("audio")
    return load_transcribed_splits(cfg.data, cfg.asr.extra_splits, lambda v: audio.check_input(v, cfg))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_table_is_carved_into_three_splits_with_its_transcripts(tmp_path, fmt):
    path = write_transcribed_table(tmp_path / "data", rows=20, fmt=fmt)
    splits = _load(_config(path, "data.validation_fraction=0.2", "data.test_fraction=0.2"))
    # test: 20% of 20; validation: 20% of the 16 left (as classification carves)
    assert {k: len(v) for k, v in splits.items()} == {"train": 13, "validation": 3, "test": 4}
    assert set(splits["test"].column_names) == {"audio", "transcript"}
    again = _load(_config(path, "data.validation_fraction=0.2", "data.test_fraction=0.2"))
    assert again["test"]["audio"] == splits["test"]["audio"]  # seeded carving


def test_column_names_are_configurable(tmp_path):
    path = write_transcribed_table(tmp_path / "data", rows=12, audio="file", transcript="sentence")
    cfg = load_config(None, ["modality=audio", "task=speech_recognition", "evaluation.metrics=[wer]",
                             "training.metric_for_best=wer", "training.greater_is_better=false", f"data.source={path}",
                             "data.input_column=file", "data.label_column=sentence"])  # fmt: skip
    assert len(_load(cfg)["train"]) > 0
    with pytest.raises(DataError, match=r"data.label_column: column 'transcript' not found .* columns are \['file', 'sentence'\]"):
        _load(_config(path, "data.input_column=file"))


def test_an_empty_transcript_is_named_with_its_row_and_line(tmp_path):
    path = write_transcribed_table(tmp_path / "data", rows=12)
    rows = list(csv.DictReader(path.open()))
    rows[5]["transcript"] = "  "
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["audio", "transcript"])
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DataError, match=r"column 'transcript' row 5 of split 'train' \(line 7 of .*data.csv\).*empty"):
        _load(_config(path))
    assert len(_load(_config(path, "data.on_bad_sample=skip"))["train"]) > 0


def test_a_missing_audio_file_is_named(tmp_path):
    path = write_transcribed_table(tmp_path / "data", rows=12)
    (tmp_path / "data" / "wav" / "003.wav").unlink()
    with pytest.raises(DataError, match=r"row 3 of split 'train'.*003.wav"):
        _load(_config(path))


def test_a_missing_extra_split_is_named_with_the_splits_there(tmp_path):
    path = write_transcribed_table(tmp_path / "data", rows=12)
    with pytest.raises(DataError, match=r"asr.extra_splits: \['test_noisy'\] not in .*splits are \['train'\]"):
        _load(_config(path, "asr.extra_splits=[test_noisy]"))


def test_other_sample_rates_are_resampled_on_load(tmp_path):
    """The policy: any rate soundfile reads is resampled (soxr) to the feature extractor's rate; a wrong
    audio.sample_rate in the config is refused when the processor loads (the audio modality's check)."""
    from hftl.modalities.audio import load_audio

    wave = load_audio(str(write_tone(tmp_path / "8k.wav", 440.0, seconds=0.5, rate=8000)), 16_000)
    assert wave.shape == (8000,)


def test_an_audiofolder_with_a_transcription_column(tmp_path):
    folder = tmp_path / "folder"
    table = write_transcribed_table(tmp_path / "src", rows=12)
    shutil.copytree(tmp_path / "src" / "wav", folder / "train")
    rows = list(csv.DictReader(table.open()))
    with (folder / "train" / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file_name", "transcription"])
        writer.writeheader()
        writer.writerows({"file_name": r["audio"].removeprefix("wav/"), "transcription": r["transcript"]} for r in rows)
    cfg = load_config(None, ["modality=audio", "task=speech_recognition", "evaluation.metrics=[wer]",
                             "training.metric_for_best=wer", "training.greater_is_better=false",
                             f"data.source={folder}", "data.input_column=audio", "data.label_column=transcription"])  # fmt: skip
    splits = _load(cfg)
    assert sum(len(s) for s in splits.values()) == 12
    assert set(splits["train"]["transcription"]) <= {r["transcript"] for r in rows}


def test_each_subset_seed_draws_its_own_training_rows_and_the_held_out_rows_stay(tmp_path):
    # hftl compare gives every seed data.subset_seed = seed: a transcript data set must resample with it, as classes do
    path = write_transcribed_table(tmp_path / "data", rows=30)
    draws = {seed: _load(_config(path, "data.max_train_samples=8", f"data.subset_seed={seed}")) for seed in (0, 1, 2)}
    trains = {seed: tuple(sorted(d["train"]["audio"])) for seed, d in draws.items()}
    assert len(set(trains.values())) == 3 and all(len(t) == 8 for t in trains.values())
    assert len({tuple(d["test"]["audio"]) for d in draws.values()}) == 1  # the same test rows for every seed
    again = _load(_config(path, "data.max_train_samples=8", "data.subset_seed=1"))
    assert tuple(sorted(again["train"]["audio"])) == trains[1]


def test_max_test_samples_caps_the_test_split_alone(tmp_path):
    path = write_transcribed_table(tmp_path / "data", rows=40)
    splits = _load(_config(path, "data.max_eval_samples=3", "data.max_test_samples=5"))
    assert (len(splits["validation"]), len(splits["test"])) == (3, 5)
    assert len(_load(_config(path, "data.max_eval_samples=3"))["test"]) == 3  # without it, max_eval_samples caps test
