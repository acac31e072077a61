"""The parts of a pushed speech recognition run's card that differ from a classifier's (hftl.deploy.model_card):
what it does, its data columns, the ONNX export's gates and latency, and how to transcribe with transformers and
with optimum's ORTModelForSpeechSeq2Seq. The model-index (WER, CER on the test split) is built by model_card.
"""

from __future__ import annotations

from typing import Any

from hftl.config import SpeechRecognitionConfig
from hftl.tasks.speech_recognition import SpeechRecognition

PIPELINE_TAG = "automatic-speech-recognition"
SPEECH_TASK = SpeechRecognition.name  # run.task of a speech recognition run
METRIC_NAMES = {"wer": "WER", "cer": "CER"}


def is_speech_run(results: Any, config: dict[str, Any]) -> bool:
    """A speech recognition run: ``run.task`` in results.json (or ``task`` in its config)."""
    return (getattr(results.run, "task", None) or config.get("task")) == SPEECH_TASK


def summary_line(kind: str, config: dict[str, Any]) -> str:
    return f"{kind} that transcribes English speech (greedy decoding), trained with hftl on `{config['data']['source']}`."


def data_rows(config: dict[str, Any]) -> list[tuple[str, Any]]:
    data = config["data"]
    return [("columns", f"audio `{data['input_column']}`, transcript `{data['label_column']}`")]


def window_seconds(config: dict[str, Any]) -> int:
    """The encoder's input window: the run's clip length (Whisper cut to short clips), else Whisper's 30 s."""
    return int((config.get("audio") or {}).get("clip_seconds") or 30)


def export_section(report: dict[str, Any], table) -> str:
    """The ONNX export's gates (transcripts, logits, int8 WER) and its latency per second of audio."""
    parity, wer, n = report["parity"], report["wer"], report["num_clips"]
    int8 = "int8_differing_transcripts" in parity
    rows = [
        ("ORT fp32 transcripts identical to PyTorch's", f"{n - parity['fp32_differing_transcripts']} / {n}"),
        ("ORT int8 transcripts identical to PyTorch's", f"{n - parity['int8_differing_transcripts']} / {n}" if int8 else None),
        (f"fp32 max abs decoder-logit diff ({parity['prefix_tokens']}-token prefix)",
         f"{parity['fp32_max_abs_logit_diff']:.2e} (gate {parity['logits_atol']:g})"),
        ("WER PyTorch / ORT fp32 / ORT int8", " / ".join(_num(wer.get(k)) for k in ("torch", "onnx_fp32", "onnx_int8"))),
        ("int8 WER minus fp32 WER", f"{_num(wer.get('int8_minus_fp32'))} (gate {wer['max_int8_increase']:g})"),
    ]  # fmt: skip
    lines = ["## ONNX export", "", f"Checked on {n} {report['clips']} ({report['audio_seconds']:.1f} s of audio), greedy "
             f"decoding; WER against {wer['references']}.", "", table(rows, ("check", "result"))]  # fmt: skip
    latency = report.get("latency") or {}
    if latency:
        cpu = latency.get("cpu") or {}
        lines += ["", f"Milliseconds per second of audio ({latency['num_threads']} threads, {cpu.get('model', '?')}):", "",
                  "| mode | PyTorch | ORT fp32 | ORT int8 |", "|---|---|---|---|"]  # fmt: skip
        for mode, row in latency["ms_per_audio_second"].items():
            cells = ["-" if row.get(k) is None else f"{row[k]:.1f}" for k in ("torch", "onnx_fp32", "onnx_int8")]
            lines.append(f"| {mode.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def max_new_tokens(config: dict[str, Any]) -> int:
    """The run's greedy cap (asr.max_new_tokens): the card's code transcribes as the run was scored."""
    return int((config.get("asr") or {}).get("max_new_tokens") or SpeechRecognitionConfig().max_new_tokens)


def _serve_usage(window: int) -> str:
    return (
        "\n\nServe it over HTTP (requests batched into one greedy decode, `/health`, `/ready`, Prometheus `/metrics`, "
        "a page to try it at `/`):\n\n```bash\n"
        "hftl serve FOLDER --port 8080  # --quantized: the int8 copy; --workers K processes, or --ray --workers K replicas\n"
        f"curl -s localhost:8080/predict -F inputs=@speech.wav  # at most {window} s per clip\n"
        '# {"transcripts": [{"text": "..."}], "model": "...", "backend": "onnxruntime-fp32"}\n```'
    )


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def usage(what: str, repo_id: str, config: dict[str, Any], base: str | None, revision: str | None) -> str:
    """Transcribing with transformers and with ORTModelForSpeechSeq2Seq, for the pushed kind."""
    rev = f', revision="{revision}"' if revision and revision != "main" else ""
    window = window_seconds(config)
    read = [
        "import soundfile as sf",
        "",
        f'audio, rate = sf.read("speech.wav")  # mono, resampled to 16 kHz if needed; at most {window} s',
    ]
    transcribe = [
        'features = processor(audio, sampling_rate=16_000, return_tensors="pt").input_features',
        f"ids = model.generate(input_features=features, num_beams=1, max_new_tokens={max_new_tokens(config)})",
        "print(processor.batch_decode(ids, skip_special_tokens=True)[0])",
    ]
    if what == "onnx":
        ort = [
            *read,
            "from optimum.onnxruntime import ORTModelForSpeechSeq2Seq",
            "from transformers import AutoProcessor",
            "",
            f'model = ORTModelForSpeechSeq2Seq.from_pretrained("{repo_id}"{rev})  # fp32; subfolder="int8": dynamic int8',
            f'processor = AutoProcessor.from_pretrained("{repo_id}"{rev})',
            *transcribe,
        ]
        after = ("`hftl predict FOLDER speech.wav ... [--quantized]` does the same from the command line "
                 "(resampling to 16 kHz, refusing clips longer than the window).")  # fmt: skip
        return "## Usage\n\n```python\n" + "\n".join(ort) + "\n```\n\n" + after + _serve_usage(window)
    if what == "adapter":
        load = [
            "from peft import PeftModel",
            "from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor",
            "",
            f'base = AutoModelForSpeechSeq2Seq.from_pretrained("{base or "BASE_MODEL"}")'
            + ("" if base else "  # the base was a local folder: point this at your copy"),
            f'model = PeftModel.from_pretrained(base, "{repo_id}"{rev}).merge_and_unload().eval()',
            f'processor = AutoProcessor.from_pretrained("{repo_id}"{rev})',
        ]
        saved = ['model.save_pretrained("merged")', 'processor.save_pretrained("merged")']
        ort_source = '"merged"'
    else:
        load = [
            "from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor",
            "",
            f'model = AutoModelForSpeechSeq2Seq.from_pretrained("{repo_id}"{rev}).eval()',
            f'processor = AutoProcessor.from_pretrained("{repo_id}"{rev})',
        ]
        saved, ort_source = [], f'"{repo_id}"{rev}'
    window_note = (f"\n\nThe encoder takes {window} s windows (cut from Whisper's 30 s): pad or cut audio to that, "
                   "as the processor does." if window != 30 else "")  # fmt: skip
    torch_code = [*read, *load, *transcribe]
    ort_code = [
        *saved,
        "from optimum.onnxruntime import ORTModelForSpeechSeq2Seq",
        "",
        f"model = ORTModelForSpeechSeq2Seq.from_pretrained({ort_source}, export=True)  # ONNX Runtime on CPU",
        *transcribe,
    ]
    return (
        "## Usage\n\nWith transformers:\n\n```python\n" + "\n".join(torch_code) + "\n```\n\n"
        "With ONNX Runtime (optimum exports it on load; `hftl export RUN_DIR` writes a checked fp32 + int8 export):"
        "\n\n```python\n" + "\n".join(ort_code) + "\n```" + window_note
    )
