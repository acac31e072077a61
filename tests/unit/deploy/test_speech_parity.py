"""The speech export's gates on given numbers, and how an audio input is decoded, resampled or refused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from transformers import WhisperFeatureExtractor

from hftl.deploy.speech_parity import gate_problems, int8_wer_delta
from hftl.deploy.speech_runtime import load_clip
from hftl.errors import DataError


def evaluation(torch, fp32, int8=None, references=None, logit_diff=1e-5, nonfinite=False):
    from hftl.evaluation.wer import word_error_rate

    transcripts = {"torch": torch, "onnx_fp32": fp32, **({"onnx_int8": int8} if int8 is not None else {})}
    differing = [i for i, (a, b) in enumerate(zip(torch, fp32, strict=True)) if a != b]
    return {
        "num_clips": len(torch),
        "transcripts": transcripts,
        "wer": {k: word_error_rate(references, v) if references else None for k, v in transcripts.items()},
        "wer_references": "test transcripts" if references else "ORT fp32 transcripts",
        "parity": {"prefix_tokens": 8, "fp32_differing_transcripts": len(differing), "fp32_max_abs_logit_diff": logit_diff,
                   "fp32_differing_examples": [{"clip": f"c{i}", "torch": torch[i], "onnx_fp32": fp32[i]} for i in differing]},
        "nonfinite": {k: nonfinite and k == "onnx_fp32" for k in transcripts},
    }  # fmt: skip


def test_identical_transcripts_and_close_logits_pass():
    ev = evaluation(["a cat sat", "on the mat"], ["a cat sat", "on the mat"], ["a cat sat", "on the mat"])
    assert gate_problems(ev, logits_atol=1e-3, max_int8_wer_increase=0.0) == []
    assert int8_wer_delta(ev) == 0.0


def test_one_differing_transcript_fails_and_is_named():
    ev = evaluation(["a cat sat", "on the mat"], ["a cat sat", "on a mat"])
    (problem,) = gate_problems(ev, logits_atol=1e-3, max_int8_wer_increase=0.01)
    assert "differ from PyTorch's on 1 of 2 clips" in problem and "c1" in problem and "'on a mat'" in problem


@pytest.mark.parametrize("diff", [2e-3, float("nan")])
def test_logit_difference_over_tolerance_or_nan_fails(diff):
    ev = evaluation(["a"], ["a"], logit_diff=diff)
    assert any("decoder logits differ" in p for p in gate_problems(ev, logits_atol=1e-3, max_int8_wer_increase=0.01))


def test_nonfinite_logits_fail():
    ev = evaluation(["a"], ["a"], nonfinite=True)
    assert gate_problems(ev, logits_atol=1e-3, max_int8_wer_increase=0.01) == ["non-finite decoder logits from onnx_fp32"]


def test_int8_is_judged_by_wer_against_the_references():
    refs = ["the cat sat on the mat", "a dog ran"]  # 9 words
    ev = evaluation(["the cat sat on the mat", "a dog ran"], ["the cat sat on the mat", "a dog ran"],
                    ["the cat sat on a mat", "a dog ran"], references=refs)  # fmt: skip
    assert int8_wer_delta(ev) == pytest.approx(1 / 9)
    assert gate_problems(ev, logits_atol=1e-3, max_int8_wer_increase=0.12) == []
    (problem,) = gate_problems(ev, logits_atol=1e-3, max_int8_wer_increase=0.1)
    assert "int8 raises WER by 0.1111" in problem and "test transcripts" in problem


def test_int8_without_references_is_judged_against_fp32_transcripts():
    ev = evaluation(["one two three four"], ["one two three four"], ["one two three five"])
    assert int8_wer_delta(ev) == pytest.approx(0.25)


@pytest.fixture
def processor():
    return SimpleNamespace(feature_extractor=WhisperFeatureExtractor(feature_size=80, sampling_rate=16_000, chunk_length=2))


def test_clip_at_another_rate_is_resampled_and_says_so(processor, tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.sin(np.arange(22_050) / 10).astype(np.float32), 22_050)
    clip = load_clip(str(path), processor)
    assert clip.sample_rate == 16_000 and clip.seconds == pytest.approx(1.0, abs=1e-3)
    assert clip.note == "resampled from 22050 Hz to 16000 Hz"


def test_clip_longer_than_the_window_is_refused(processor, tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16_000 * 3, dtype=np.float32) + 0.1, 16_000)
    with pytest.raises(DataError, match=r"long.wav: 3.00 s is longer than the model's 2 s window"):
        load_clip(str(path), processor)


def test_corrupt_and_missing_files_are_named(processor, tmp_path):
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"fLaC but nothing else")
    with pytest.raises(DataError, match="bad.flac: cannot be decoded"):
        load_clip(str(bad), processor)
    with pytest.raises(DataError, match="nowhere.wav"):
        load_clip(str(tmp_path / "nowhere.wav"), processor)
