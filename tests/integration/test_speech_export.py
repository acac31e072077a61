"""Speech recognition export end to end on a tiny random Whisper with its encoder cut to 2-s clips:
`hftl export RUN_DIR` (optimum encoder-decoder ONNX, gates, report) -> ORTModelForSpeechSeq2Seq loads it ->
`hftl predict` transcribes audio files; a perturbed ONNX graph fails the gate and leaves nothing behind."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from hftl.cli import main
from hftl.config import ExportConfig
from hftl.deploy import speech_export
from hftl.deploy.speech_parity import evaluate_recognizers, gate_problems
from hftl.deploy.speech_predict import load_recognizer, speech_target
from hftl.deploy.speech_runtime import (
    DECODER_FILE,
    ENCODER_FILE,
    Clip,
    load_onnx_recognizer,
    load_torch_recognizer,
)
from hftl.errors import ExportError
from tests.helpers.speech_clips import RATE, TARGET_POSITIONS, chirp, tiny_recogniser, write_clips
from tests.helpers.speech_runs import RUN_MAX_NEW_TOKENS, fake_speech_run, write_speech_data


@pytest.fixture(scope="module")
def tiny_asr(tmp_path_factory, real_home) -> Path:
    return tiny_recogniser(tmp_path_factory.mktemp("tiny_asr") / "model", clip_seconds=2)


@pytest.fixture(scope="module")
def exported_run(tiny_asr, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speech_run")
    run_dir = fake_speech_run(root / "run", tiny_asr, write_speech_data(root / "data"))
    # A random model's int8 transcripts drift from fp32's (its WER gate is tested below): allow it here.
    code = main(["export", str(run_dir), "export.max_int8_wer_increase=100", "export.latency_repeats=1",
                 "export.num_threads=1"])  # fmt: skip
    assert code == 0
    return run_dir


def test_export_run_loads_with_optimum_and_passes_the_gates(exported_run):
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
    from transformers import AutoProcessor

    out = exported_run / "onnx"
    report = json.loads((out / "export_report.json").read_text())
    assert report["task"] == "automatic-speech-recognition" and report["num_clips"] == 4
    assert report["parity"]["fp32_differing_transcripts"] == 0
    assert report["parity"]["fp32_max_abs_logit_diff"] <= report["parity"]["logits_atol"]
    assert report["transcripts"]["torch"] == report["transcripts"]["onnx_fp32"]
    assert all(t for t in report["transcripts"]["torch"])  # a random model still says something
    latency = report["latency"]["ms_per_audio_second"]
    assert set(latency) == {"batch_1", "batch_all"} and set(latency["batch_1"]) == {"torch", "onnx_fp32", "onnx_int8"}
    assert report["latency"]["cpu"]["model"] and "int8_isa" in report["latency"]["cpu"]
    # Both folders load with optimum's own class; the processor files came along, cut to the 2-s window.
    for folder in (out, out / "int8"):
        ORTModelForSpeechSeq2Seq.from_pretrained(folder)
        assert AutoProcessor.from_pretrained(folder).feature_extractor.chunk_length == 2
    assert not (out / "decoder_model.onnx").exists() and (out / DECODER_FILE).is_file()
    assert (out / "hftl_config.yaml").is_file()
    # The encoder was traced with the cut input: 2 s = 200 mel frames, not Whisper's 3000.
    import onnx

    encoder = onnx.load(str(out / ENCODER_FILE), load_external_data=False)
    frames = encoder.graph.input[0].type.tensor_type.shape.dim[2]
    assert frames.dim_value == 200


def test_export_predict_and_gates_decode_with_the_runs_max_new_tokens(exported_run):
    import torch

    out = exported_run / "onnx"
    report = json.loads((out / "export_report.json").read_text())
    assert report["max_new_tokens"] == RUN_MAX_NEW_TOKENS  # recorded with the export
    # what hftl predict (and anything loading the export) decodes with: the recorded cap, not a fixed one
    recognizers = [load_onnx_recognizer(out), load_onnx_recognizer(out, quantized=True), load_recognizer(out)[0],
                   load_recognizer(speech_target(exported_run), quantized=True)[0],
                   load_recognizer(exported_run)[0]]  # the run's own model (PyTorch): its config's asr.max_new_tokens
    assert [r.max_new_tokens for r in recognizers] == [RUN_MAX_NEW_TOKENS] * 5
    assert recognizers[-1].name == "torch"
    # the cap binds: uncapped, the random model writes up to the end of its position table
    features = recognizers[0].features([chirp(1.5, seed=7)])
    uncapped = load_torch_recognizer(exported_run / "model").generate_ids(features)
    assert uncapped.shape[1] > 4 + RUN_MAX_NEW_TOKENS and TARGET_POSITIONS > 4 + RUN_MAX_NEW_TOKENS
    for rec in recognizers:
        ids = torch.as_tensor(rec.generate_ids(features))
        assert ids.shape[1] <= 4 + RUN_MAX_NEW_TOKENS  # a prompt of at most 4 special tokens + the cap
    # the export's gates ran with it too: the report's transcripts are the capped ones
    assert report["transcripts"]["onnx_fp32"] == recognizers[0].transcribe([c for c in _test_waves(exported_run)])


def _test_waves(run_dir: Path) -> list[np.ndarray]:
    """The run's test clips, as the export read them (data/test.csv)."""
    data = Path(yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["source"])
    with (data / "test.csv").open() as f:
        return [sf.read(data / row["audio"], dtype="float32")[0] for row in csv.DictReader(f)]


def test_perturbed_onnx_weights_fail_the_parity_gate(exported_run, tmp_path):
    import onnx
    from onnx import numpy_helper

    broken = tmp_path / "broken"
    shutil.copytree(exported_run / "onnx", broken)
    model = onnx.load(str(broken / ENCODER_FILE))
    weights = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))  # the largest weight: a real change
    array = numpy_helper.to_array(weights)
    weights.CopyFrom(numpy_helper.from_array((array * 1.5 + 0.05).astype(array.dtype), weights.name))
    onnx.save(model, str(broken / ENCODER_FILE))

    clips = [Clip(f"c{i}", chirp(1.5, seed=i), RATE) for i in range(3)]
    recognizers = {"torch": load_torch_recognizer(exported_run / "model"), "onnx_fp32": load_onnx_recognizer(broken)}
    ev = evaluate_recognizers(recognizers, clips, None)
    problems = gate_problems(ev, logits_atol=1e-3, max_int8_wer_increase=0.01)
    assert ev["parity"]["fp32_max_abs_logit_diff"] > 1e-3
    assert any("decoder logits differ" in p for p in problems)


def test_failed_gate_leaves_the_previous_export_untouched(tiny_asr, tmp_path, monkeypatch):
    import onnx
    from onnx import numpy_helper

    real_export = speech_export.export_speech_onnx

    def export_then_break(model_dir, out_dir, **kwargs):  # the fault: a graph whose weights differ from the model's
        real_export(model_dir, out_dir, **kwargs)
        model = onnx.load(str(out_dir / DECODER_FILE))
        for tensor in model.graph.initializer:
            if tensor.name.endswith("fc1.weight") or "MatMul" in tensor.name:
                array = numpy_helper.to_array(tensor)
                tensor.CopyFrom(numpy_helper.from_array((array * -1.0).astype(array.dtype), tensor.name))
        onnx.save(model, str(out_dir / DECODER_FILE))
        return out_dir

    monkeypatch.setattr(speech_export, "export_speech_onnx", export_then_break)
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "previous.txt").write_text("the last good export")
    clips = [Clip(f"c{i}", chirp(1.5, seed=i), RATE) for i in range(3)]
    with pytest.raises(ExportError, match="refused") as err:
        speech_export.export_speech_and_check(tiny_asr, out, clips, None, ExportConfig(quantize=False), measure_speed=False)
    assert err.value.report["parity"]["fp32_max_abs_logit_diff"] > 1e-3
    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["onnx"]  # no half-written work folder left


def test_int8_wer_gate_refuses_an_int8_model_that_adds_errors(tiny_asr, tmp_path):
    # The random tiny model's int8 transcripts drift from fp32 (words change): the default 1-point gate refuses.
    clips = [Clip(f"c{i}", chirp(1.5, seed=i), RATE) for i in range(4)]
    with pytest.raises(ExportError, match="int8 raises WER by") as err:
        speech_export.export_speech_and_check(tiny_asr, tmp_path / "onnx", clips, None, ExportConfig(), measure_speed=False)
    wer = err.value.report["wer"]
    assert wer["int8_minus_fp32"] > 0.01 and wer["references"] == "ORT fp32 transcripts"
    assert err.value.report["parity"]["fp32_differing_transcripts"] == 0  # fp32 itself was fine
    assert not (tmp_path / "onnx").exists()


def test_predict_transcribes_audio_files_and_names_bad_ones(exported_run, tmp_path, capsys):
    report = json.loads((exported_run / "onnx" / "export_report.json").read_text())
    good = write_clips(tmp_path / "good", 2)
    at_8k = tmp_path / "at_8k.wav"
    sf.write(at_8k, chirp(1.5, seed=0, rate=8_000), 8_000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    too_long = tmp_path / "too_long.wav"
    sf.write(too_long, chirp(3.0, seed=1), RATE)

    out = tmp_path / "transcripts.jsonl"
    args = ["predict", str(exported_run / "onnx"), *map(str, [*good, at_8k, corrupt, too_long]), "--output", str(out)]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["input"]).name for r in rows] == ["clip_0.wav", "clip_1.wav", "at_8k.wav", "corrupt.wav", "too_long.wav"]
    # The same clips the export was checked on (test rows 0, 1 are clip_2, clip_3): here clip_0/1 are new, so
    # compare with PyTorch on the same files instead.
    torch_rec = load_torch_recognizer(exported_run / "model", max_new_tokens=RUN_MAX_NEW_TOKENS)
    assert [r["transcript"] for r in rows[:2]] == torch_rec.transcribe([sf.read(p, dtype="float32")[0] for p in good])
    assert rows[2]["transcript"] and rows[2]["note"] == "resampled from 8000 Hz to 16000 Hz"
    assert "cannot be decoded" in rows[3]["error"] and str(corrupt) in rows[3]["error"]
    assert "longer than the model's 2 s window" in rows[4]["error"]
    assert "2 of 5 inputs could not be transcribed" in capsys.readouterr().err
    assert report["parity"]["fp32_differing_transcripts"] == 0

    # int8 from the export's int8/ folder; a run folder resolves to its export; a table on stdout.
    assert main(["predict", str(exported_run), "--quantized", str(good[0])]) == 0
    table = capsys.readouterr().out
    assert "transcript" in table.splitlines()[0] and str(good[0]) in table


@pytest.mark.slow  # the real whisper-tiny.en (zoo) on espeak-ng speech: about two minutes on 2 cores
def test_real_whisper_tiny_export_gives_identical_transcripts(real_home, tmp_path):
    from hftl import zoo
    from hftl.zoo.espeak import speak

    sentences = ["The quick brown fox jumps over the lazy dog.", "Markets fell sharply after the announcement on Tuesday."]
    clips = [Clip(f"s{i}", speak(s, voice=v), RATE) for i, (s, v) in enumerate(zip(sentences, ["en-us", "en+m3"], strict=True))]
    report = speech_export.export_speech_and_check(
        zoo.prepare("whisper-tiny"), tmp_path / "onnx", clips, sentences, ExportConfig(latency_repeats=1)
    )
    assert report["parity"]["fp32_differing_transcripts"] == 0
    assert report["parity"]["fp32_max_abs_logit_diff"] <= ExportConfig().speech_logits_atol
    assert report["wer"]["onnx_fp32"] == report["wer"]["torch"] < 0.5
    assert report["wer"]["int8_minus_fp32"] <= ExportConfig().max_int8_wer_increase


def test_summary_shows_the_speech_export_and_serve_resolves_it(exported_run, capsys):
    from hftl.errors import HftlError
    from hftl.serve.settings import resolve_export_dir

    assert main(["summary", str(exported_run)]) == 0
    out = capsys.readouterr().out
    assert "transcripts differing from PyTorch: fp32 0" in out and "ms per second of audio, batch_1" in out
    # `hftl serve RUN_DIR` serves the run's speech export on onnxruntime (tests/integration/test_serve_speech.py)
    assert resolve_export_dir(exported_run) == ((exported_run / "onnx").resolve(), "onnxruntime")
    with pytest.raises(HftlError, match="speech recognition export: it is served on onnxruntime, not openvino"):
        resolve_export_dir(exported_run, "openvino")

