"""The card of a pushed speech recognition run: WER/CER in the model-index, the ASR pipeline tag, usage with
transformers and with ORTModelForSpeechSeq2Seq; a classifier's card is rendered as before."""

from __future__ import annotations

import copy

import pytest
from huggingface_hub import ModelCard

from hftl.config import Config
from hftl.deploy.model_card import render_card

RESULTS = {
    "run": {"name": "r", "task": "speech_recognition", "modality": "audio", "method": "lora", "model": "openai/whisper-tiny.en",
            "dataset": "zoo:espeak-sentences", "seed": 0, "versions": {"torch": "2.13.0"}},
    "params": {"trainable": 10, "total": 100},
    "data": {"labels": [], "train": 240, "validation": 40, "test": 60},
    "train": {"runtime_s": 1.0, "samples_per_second": 8.0, "epochs_completed": 1, "steps": 30, "total_steps": 30,
              "best_step": 30, "metric_for_best": "wer"},
    "eval": {"wer": 0.25, "cer": 0.1},
    "test": {"wer": 0.21, "cer": 0.08, "loss": 0.9},
}  # fmt: skip
REPORT = {
    "task": "automatic-speech-recognition", "clips": "test clips of zoo:espeak-sentences", "num_clips": 60,
    "audio_seconds": 240.0,
    "parity": {"prefix_tokens": 8, "fp32_differing_transcripts": 0, "int8_differing_transcripts": 2,
               "fp32_max_abs_logit_diff": 1.5e-4, "int8_max_abs_logit_diff": 7.3, "logits_atol": 1e-3},
    "wer": {"torch": 0.21, "onnx_fp32": 0.21, "onnx_int8": 0.215, "references": "test transcripts",
            "int8_minus_fp32": 0.005, "max_int8_increase": 0.01},
    "latency": {"num_threads": 2, "cpu": {"model": "AMD EPYC"},
                "ms_per_audio_second": {"batch_1": {"torch": 600.0, "onnx_fp32": 350.0, "onnx_int8": 250.0}}},
}  # fmt: skip


def speech_config() -> dict:
    config = Config(modality="audio").to_dict()
    config["task"] = "speech_recognition"
    config["data"].update(source="zoo:espeak-sentences", input_column="audio", label_column="transcript")
    config["audio"]["clip_seconds"] = 10
    config["asr"]["max_new_tokens"] = 40
    return config


@pytest.mark.parametrize("what", ["merged", "adapter", "onnx"])
def test_speech_card_indexes_wer_and_cer_and_shows_both_runtimes(what):
    text = render_card(what=what, repo_id="me/asr", results=RESULTS, config=speech_config(), base_model="openai/whisper-tiny.en",
                       export_report=REPORT if what == "onnx" else None, dataset_id="me/espeak")  # fmt: skip
    meta = ModelCard(text).data.to_dict()
    assert meta["pipeline_tag"] == "automatic-speech-recognition"
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "automatic-speech-recognition" and result["dataset"]["split"] == "test"
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"wer": 0.21, "cer": 0.08}
    assert {m["name"] for m in result["metrics"]} == {"WER", "CER"}
    assert "transcribes English speech" in text and "classifies" not in text
    assert "transcript `transcript`" in text and "10 s" in text
    assert "ORTModelForSpeechSeq2Seq.from_pretrained(" in text
    assert "max_new_tokens=40)" in text  # the card's code decodes with the run's cap, as its WER was scored
    if what == "onnx":
        assert 'subfolder="int8"' in text and "AutoModelForSpeechSeq2Seq" not in text
        # `hftl push --what onnx`: the card says how to serve the export (tests/integration/test_serve_speech.py)
        assert "hftl serve FOLDER --port 8080" in text and "-F inputs=@speech.wav  # at most 10 s" in text
        assert "| ORT fp32 transcripts identical to PyTorch's | 60 / 60 |" in text
        assert "| int8 WER minus fp32 WER | 0.0050 (gate 0.01) |" in text and "| batch 1 | 600.0 | 350.0 | 250.0 |" in text
    else:
        assert "AutoModelForSpeechSeq2Seq.from_pretrained(" in text and "export=True" in text
    if what == "adapter":
        assert 'PeftModel.from_pretrained(base, "me/asr").merge_and_unload()' in text


def test_a_classifier_card_has_no_speech_parts():
    results = copy.deepcopy(RESULTS)
    results["run"].update(task="classification", modality="text")
    results["data"]["labels"] = ["neg", "pos"]
    results["test"] = {"accuracy": 0.9}
    text = render_card(what="merged", repo_id="me/m", results=results, config=Config().to_dict())
    meta = ModelCard(text).data.to_dict()
    assert meta["pipeline_tag"] == "text-classification" and "classifies text into 2 labels" in text
    assert "Speech" not in text and "label `label`" in text


@pytest.mark.parametrize("modality", ["text", "vision", "audio"])
def test_a_classifier_onnx_card_says_how_to_serve_it(modality):
    results = copy.deepcopy(RESULTS)
    results["run"].update(task="classification", modality=modality)
    results["data"]["labels"] = ["neg", "pos"]
    results["test"] = {"accuracy": 0.9}
    text = render_card(what="onnx", repo_id="me/m", results=results, config=Config(modality=modality).to_dict())
    assert "hftl serve FOLDER --quantized --port 8080" in text and "localhost:8080/predict" in text
    assert ("-H 'content-type: application/json'" in text) == (modality == "text")  # files go as multipart
    assert "transcripts" not in text
