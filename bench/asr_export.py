"""Speech recognition export: PyTorch vs ORT fp32 vs ORT int8 on the same clips, transcripts, WER and latency.

    python bench/asr_export.py [--run RUN_DIR] [--clips 12] [--repeats 3] [--threads N] [--out runs/bench/asr_export]
    python bench/asr_export.py --data ~/.cache/hftl/datasets/espeak-sentences --clip-seconds 10 [--max-clips 100]

Exports with ``hftl.deploy.speech_export`` (what ``hftl export`` does for a speech recognition run) and prints:
identical greedy transcripts (ORT fp32 and int8 vs PyTorch) out of the clips, WER of each backend and the int8 WER
delta, the largest decoder-logit difference on a fixed prefix, and milliseconds per second of audio (clip by clip
and all clips batched; shuffled blocks, medians; ``hftl.deploy.speech_latency``) with the CPU it ran on.

Without ``--run``: the zoo's whisper-tiny.en on sentences spoken by espeak-ng in five voices (``hftl zoo prepare
whisper-tiny``; Debian's espeak-ng). ``--data SOURCE``: the test split of a data set instead (audio and transcript
columns: ``--input-column``, ``--text-column``); ``--clip-seconds N`` cuts whisper-tiny's encoder to N-s windows first
(as speech recognition recipes do). With ``--run``: a finished speech recognition run, checked on its test split.
The export report lands in OUT/onnx/export_report.json (or RUN_DIR/onnx/); the printed tables are the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hftl.config import ExportConfig
from hftl.deploy.speech_export import export_speech_and_check
from hftl.deploy.speech_runtime import Clip
from hftl.errors import ExportError

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Markets fell sharply after the announcement on Tuesday.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The committee will meet again next month to review the budget.",
    "Heavy rain is expected across the north of the country tonight.",
    "She sold her old car and bought a bicycle instead.",
    "The museum opens at nine and closes at five on weekdays.",
    "Scientists have found water on a distant moon.",
    "Our train was delayed by almost an hour this morning.",
    "The new phone runs software that lets users stream films.",
    "He plays the piano every evening after dinner.",
    "Two teams will compete in the final on Saturday afternoon.",
]  # fmt: skip
VOICES = [("en-us", 150), ("en+m3", 140), ("en+f2", 165), ("en+m1", 155), ("en+f3", 145)]


def espeak_clips(n: int) -> tuple[list[Clip], list[str]]:
    from hftl.zoo.espeak import speak

    texts = [SENTENCES[i % len(SENTENCES)] for i in range(n)]
    clips = []
    for i, text in enumerate(texts):
        voice, speed = VOICES[i % len(VOICES)]
        clips.append(Clip(f"espeak {voice} {speed} wpm #{i}", speak(text, voice=voice, speed=speed), 16_000))
    return clips, texts


def whisper_tiny(out: Path, clip_seconds: int | None) -> Path:
    """The zoo's whisper-tiny.en folder, or a copy with its encoder cut to ``clip_seconds`` (saved under ``out``)."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from hftl import zoo
    from hftl.modalities.whisper import shorten_whisper_encoder

    source = zoo.prepare("whisper-tiny")
    if not clip_seconds:
        return source
    model = WhisperForConditionalGeneration.from_pretrained(source).eval()
    extractor = shorten_whisper_encoder(model, clip_seconds)
    target = out / f"whisper-tiny-{clip_seconds}s"
    model.save_pretrained(target)
    model.generation_config.save_pretrained(target)
    tokenizer = WhisperProcessor.from_pretrained(source).tokenizer
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(target)
    return target


def data_clips(model_dir: Path, args: argparse.Namespace) -> tuple[list[Clip], list[str]]:
    """The test split of ``--data`` as ``hftl export`` reads a run's (hftl.deploy.speech_run.held_out_clips)."""
    from transformers import AutoProcessor

    from hftl.config import load_config
    from hftl.deploy.speech_run import held_out_clips

    overrides = ["modality=audio", f"data.source={args.data}", f"data.input_column={args.input_column}",
                 f"data.label_column={args.text_column}"] + ([f"export.max_samples={args.max_clips}"] if args.max_clips else [])  # fmt: skip
    return held_out_clips(load_config(None, overrides), AutoProcessor.from_pretrained(model_dir))


def tables(report: dict) -> str:
    parity, wer, lat = report["parity"], report["wer"], report["latency"]
    n = report["num_clips"]
    lines = [
        f"clips: {n} ({report['clips']}, {report['audio_seconds']:.1f} s of audio); greedy decoding",
        "",
        "| backend | identical transcripts vs PyTorch | WER | max abs logit diff (prefix) |",
        "|---|---|---|---|",
        f"| PyTorch fp32 | - | {_f(wer['torch'])} | - |",
        f"| ORT fp32 | {n - parity['fp32_differing_transcripts']} / {n} | {_f(wer['onnx_fp32'])} | "
        f"{parity['fp32_max_abs_logit_diff']:.2e} |",
    ]
    if "int8_differing_transcripts" in parity:
        lines.append(f"| ORT int8 | {n - parity['int8_differing_transcripts']} / {n} | {_f(wer['onnx_int8'])} | "
                     f"{parity['int8_max_abs_logit_diff']:.2e} |")  # fmt: skip
    lines += ["", f"int8 WER - fp32 WER: {_f(wer['int8_minus_fp32'])} (gate {wer['max_int8_increase']})", ""]
    if lat:
        cpu = lat["cpu"]
        lines += [
            f"ms per second of audio ({lat['clips']} clips, {lat['audio_seconds']:.1f} s; {lat['num_threads']} threads; "
            f"{cpu['model']}, flags {' '.join(cpu['flags'])}, int8 {cpu['int8_isa']}; other processes used "
            f"{lat['method']['other_processes_cpu_share']} of the CPU meanwhile)",
            "",
            "| mode | PyTorch | ORT fp32 | ORT int8 | speed-up fp32 / int8 |",
            "|---|---|---|---|---|",
        ]
        for mode, row in lat["ms_per_audio_second"].items():
            up = lat["speedup_vs_torch"][mode]
            lines.append(f"| {mode} | {row['torch']:.1f} | {row['onnx_fp32']:.1f} | {_f(row.get('onnx_int8'), 1)} | "
                         f"{up['onnx_fp32']:.2f} / {_f(up.get('onnx_int8'), 2)} |")  # fmt: skip
    return "\n".join(lines)


def _print_differences(report: dict) -> None:
    """The clips whose int8 transcript differs from PyTorch's, with the reference when there is one."""
    transcripts = report["transcripts"]
    for i, (ref, int8) in enumerate(zip(transcripts["torch"], transcripts.get("onnx_int8", []), strict=False)):
        if ref != int8:
            print(f"  clip {i}: torch {ref!r}\n          int8  {int8!r}", file=sys.stderr)


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a finished speech recognition run (checked on its test split)")
    p.add_argument("--clips", type=int, default=12, help="espeak-ng clips without --run (default 12)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per backend and mode (default 3)")
    p.add_argument("--threads", type=int, help="threads for every backend (default: all usable cores)")
    p.add_argument("--out", default="runs/bench/asr_export", help="export folder parent without --run")
    p.add_argument("--data", help="check on this data set's test split instead of espeak-ng sentences")
    p.add_argument("--input-column", default="audio", help="--data's audio column (default audio)")
    p.add_argument("--text-column", default="transcript", help="--data's transcript column (default transcript)")
    p.add_argument("--max-clips", type=int, help="first N test clips of --data (default: all)")
    p.add_argument("--clip-seconds", type=int, help="cut whisper-tiny's encoder to N-s windows first (default: 30 s)")
    p.add_argument("--max-int8-wer-increase", type=float, help="the int8 gate (default: export.max_int8_wer_increase)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    settings = {"latency_repeats": args.repeats, "num_threads": args.threads, "max_int8_wer_increase": args.max_int8_wer_increase}
    settings = {k: v for k, v in settings.items() if v is not None}
    try:
        if args.run:
            from hftl.deploy.speech_run import export_speech_run

            report = export_speech_run(args.run, [f"export.{k}={v}" for k, v in settings.items()])
        else:
            model_dir = whisper_tiny(Path(args.out), args.clip_seconds)
            if args.data:
                clips, texts = data_clips(model_dir, args)
                source = f"test clips of {args.data}"
            else:
                clips, texts = espeak_clips(args.clips)
                source = "espeak-ng clips"
            window = f", encoder cut to {args.clip_seconds} s" if args.clip_seconds else ""
            report = export_speech_and_check(
                model_dir, Path(args.out) / "onnx", clips, texts, ExportConfig(**settings),
                source=f"{source} (whisper-tiny.en{window})",
            )  # fmt: skip
    except ExportError as err:  # a refused export still has its numbers (no latency: timing runs after the gates)
        if err.report is None:
            raise
        print(f"REFUSED: {err}\n\n{tables(err.report)}")
        _print_differences(err.report)
        return 1
    print(tables(report))
    _print_differences(report)
    print(f"\n({time.perf_counter() - started:.0f} s; transcripts: {json.dumps(report['transcripts']['onnx_fp32'][:3])} ...)",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
