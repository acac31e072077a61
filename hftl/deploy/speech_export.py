"""Speech recognition to ONNX: optimum's encoder-decoder export, int8, the gates and the report, published atomically.

    OUT/encoder_model.onnx, decoder_model_merged.onnx   fp32, loads with ORTModelForSpeechSeq2Seq.from_pretrained(OUT)
    OUT/int8/ (same names)                              dynamic int8, ORTModelForSpeechSeq2Seq.from_pretrained(OUT/int8)
    OUT/config.json, generation_config.json, tokenizer and feature-extractor files (also in int8/)
    OUT/export_report.json                              gates, WER fp32/int8, latency per second of audio, CPU

OUT is written in a sibling work folder and swapped in only when every gate passes (hftl.deploy.speech_parity);
a refused export leaves OUT as it was and says why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hftl.config import ExportConfig
from hftl.deploy.onnx import _jsonable, _opset, _scratch_cwd, _size_mb, _versions, publish, work_folder
from hftl.deploy.speech_latency import measure_speech_latency
from hftl.deploy.speech_parity import evaluate_recognizers, gate_problems, int8_wer_delta
from hftl.deploy.speech_report import speech_report_lines
from hftl.deploy.speech_runtime import (
    DECODER_FILE,
    ENCODER_FILE,
    INT8_SUBFOLDER,
    MAX_NEW_TOKENS,
    Clip,
    load_onnx_recognizer,
    load_torch_recognizer,
)
from hftl.errors import ExportError

logger = logging.getLogger("hftl")

ONNX_TASK = "automatic-speech-recognition-with-past"  # optimum's task: encoder + decoder with a key/value cache
# Unmerged decoders optimum also writes; the merged one holds both (ORTModelForSpeechSeq2Seq prefers it).
_UNMERGED = ("decoder_model.onnx", "decoder_with_past_model.onnx")
_SMALL_FILES = ("*.json", "*.txt")  # config, generation config, tokenizer, feature extractor: copied into int8/


def export_speech_onnx(model_dir: Path, out_dir: Path, *, opset: int | None = None) -> Path:
    """optimum's export of a saved WhisperForConditionalGeneration (+ processor) into ``out_dir``.

    A Whisper encoder cut to short clips (``max_source_positions`` < 1500) is traced with its own input length.
    """
    from optimum.exporters.onnx import main_export

    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ExportError(f"{model_dir} holds no transformers model (no config.json)")
    if (model_dir / "adapter_config.json").is_file():
        raise ExportError(f"{model_dir} holds a PEFT adapter: merge it first (merge_and_unload + save_pretrained)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if not config.get("is_encoder_decoder"):
        raise ExportError(f"{model_dir}: {config.get('model_type')} is not an encoder-decoder speech recogniser")
    shapes = {"nb_max_frames": 2 * config["max_source_positions"]} if config.get("model_type") == "whisper" else {}
    main_export(
        str(model_dir), output=Path(out_dir), task=ONNX_TASK, opset=opset, **shapes,
        do_validation=False,  # our gates compare transcripts and logits on real speech
        library_name="transformers", local_files_only=True,
    )  # fmt: skip
    for name in _UNMERGED:
        (Path(out_dir) / name).unlink(missing_ok=True)
    for name in (ENCODER_FILE, DECODER_FILE):
        if not (Path(out_dir) / name).is_file():
            raise ExportError(f"optimum wrote no {name} into {out_dir}")
    return Path(out_dir)


def quantize_speech_export(folder: Path) -> dict[str, Any]:
    """Dynamic int8 of the encoder and the merged decoder into ``folder/int8/`` (a complete loadable folder).

    Only MatMuls by a weight, one scale per output channel (what kept accuracy for classifiers, hftl.deploy.onnx),
    inside the merged decoder's If branches too. ``reduce_range`` where the CPU lacks VNNI/AMX (u8 x s8 products
    can overflow in AVX2's 16-bit accumulation).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from hftl.run import cpu

    folder = Path(folder).resolve()
    target = folder / INT8_SUBFOLDER
    target.mkdir(exist_ok=True)
    isa = cpu.int8_isa()
    reduce_range = isa in ("avx2", "avx512bw", "sse")
    with _scratch_cwd(), _quiet_root_logger():
        for name in (ENCODER_FILE, DECODER_FILE):
            quantize_dynamic(
                folder / name, target / name, op_types_to_quantize=["MatMul"], per_channel=True,
                reduce_range=reduce_range, weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True, "EnableSubgraph": True},
            )  # fmt: skip
    for pattern in _SMALL_FILES:
        for path in folder.glob(pattern):
            shutil.copyfile(path, target / path.name)
    return {
        "mode": "dynamic", "operators": ["MatMul"], "weights": "MatMul by a constant only", "per_channel": True,
        "weights_dtype": "QInt8", "activations_dtype": "QUInt8", "reduce_range": reduce_range,
        "kernel_isa": f"{isa} (MLAS u8s8 GEMM)", "files": [f"{INT8_SUBFOLDER}/{ENCODER_FILE}", f"{INT8_SUBFOLDER}/{DECODER_FILE}"],
    }  # fmt: skip


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantizer logs through the root logger: a pre-processing hint on every call, a line per node."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def export_speech_and_check(
    model_dir: Path,
    out_dir: Path,
    clips: Sequence[Clip],
    references: Sequence[str] | None,
    export: ExportConfig | None = None,
    *,
    measure_speed: bool = True,
    extra_files: Mapping[str, Path] | None = None,
    source: str = "clips",
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> dict[str, Any]:
    """Export, quantize, gate, time and report; ``out_dir`` is (re)placed only when every gate passes.

    Args:
        model_dir: The merged speech recogniser (config.json, weights, processor files).
        clips: Audio the gates run on (the run's test split when exporting a run).
        references: Their true transcripts (WER), or None (int8 is then judged against fp32's transcripts).
        export: speech_logits_atol, max_int8_wer_increase, quantize, num_threads, latency_repeats, opset.
        source: What the clips are, for the report.
        max_new_tokens: The greedy cap of every backend (a run's ``asr.max_new_tokens``); the report records it, and
            loading the export (predict, serving) decodes with it.

    Raises:
        ExportError: a gate failed (the message has the numbers; ``.report`` all of them); ``out_dir`` is untouched.
    """
    export = export or ExportConfig()
    if not clips:
        raise ExportError(f"no audio clips to check the export of {model_dir} on")
    if references is not None and len(references) != len(clips):
        raise ExportError(f"{len(clips)} clips but {len(references)} reference transcripts")
    model_dir, out_dir, work = work_folder(model_dir, out_dir)
    try:
        logger.info("exporting %s to ONNX (%s)", model_dir, ONNX_TASK)
        export_speech_onnx(model_dir, work, opset=export.opset)
        quantization = quantize_speech_export(work) if export.quantize else None
        recognizers = {"torch": load_torch_recognizer(model_dir, max_new_tokens=max_new_tokens)}
        recognizers["onnx_fp32"] = load_onnx_recognizer(work, num_threads=export.num_threads, max_new_tokens=max_new_tokens)
        if quantization:
            recognizers["onnx_int8"] = load_onnx_recognizer(
                work, quantized=True, num_threads=export.num_threads, max_new_tokens=max_new_tokens
            )
        logger.info("checking transcripts of %d %s on %s", len(clips), source, ", ".join(recognizers))
        ev = evaluate_recognizers(recognizers, clips, references)
        report = _report(model_dir, work, ev, export, quantization, source)
        report["max_new_tokens"] = max_new_tokens
        problems = gate_problems(ev, logits_atol=export.speech_logits_atol, max_int8_wer_increase=export.max_int8_wer_increase)
        if problems:
            raise ExportError(f"ONNX export of {model_dir} refused: " + "; ".join(problems), _jsonable(report))
        if measure_speed:
            logger.info("timing %s per second of audio", ", ".join(recognizers))
            report["latency"] = measure_speech_latency(
                recognizers, clips, num_threads=export.num_threads, repeats=export.latency_repeats
            )
        publish(work, out_dir, _jsonable(report), extra_files)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _jsonable(report)


def _report(
    model_dir: Path, work: Path, ev: dict[str, Any], export: ExportConfig, quantization: dict | None, source: str
) -> dict[str, Any]:
    files = {name: _size_mb(work / name) for name in (ENCODER_FILE, DECODER_FILE)}
    if quantization:
        files |= {f"{INT8_SUBFOLDER}/{n}": _size_mb(work / INT8_SUBFOLDER / n) for n in (ENCODER_FILE, DECODER_FILE)}
    return {
        "task": "automatic-speech-recognition",
        "onnx_task": ONNX_TASK,
        "opset": _opset(work / ENCODER_FILE),
        "versions": _versions(),
        "model_dir": str(model_dir),
        "clips": source,
        "num_clips": ev["num_clips"],
        "audio_seconds": ev["audio_seconds"],
        "decoding": "greedy",
        "parity": {**ev["parity"], "logits_atol": export.speech_logits_atol},
        "wer": {**ev["wer"], "references": ev["wer_references"], "int8_minus_fp32": int8_wer_delta(ev),
                "max_int8_increase": export.max_int8_wer_increase},  # fmt: skip
        "nonfinite": ev["nonfinite"],
        "transcripts": ev["transcripts"],
        "quantization": quantization,
        "sizes_mb": {**files, "torch_safetensors": _size_mb(*sorted(model_dir.glob("*.safetensors")))},
        "latency": None,
    }


def print_speech_report(report: Mapping[str, Any]) -> None:
    """A short human summary of a speech export's export_report.json."""
    print(f"ONNX export (speech recognition, {report['num_clips']} {report['clips']}, {report['audio_seconds']:.1f} s of audio)")
    print("\n".join(speech_report_lines(report, indent="  ")))
