"""The speech export's gates: the same clips through PyTorch, ORT fp32 and ORT int8.

- transcripts: greedy transcripts of ORT fp32 must equal PyTorch's on every clip (the count that differ is reported);
- logits: max |logit difference| of ORT fp32 vs PyTorch on a fixed decoder prefix (PyTorch's own first tokens),
  at most ``logits_atol``, and finite everywhere;
- int8: WER of ORT int8 minus WER of ORT fp32 at most ``max_int8_wer_increase`` (int8 moves logits by design, so it
  is judged by what a user sees). Without reference transcripts, the fp32 transcripts are the references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hftl.deploy.speech_runtime import Clip, SpeechRecognizer
from hftl.evaluation.wer import word_error_rate

PREFIX_TOKENS = 8  # decoder positions compared: the prompt plus the first words
LOGIT_CLIPS = 8  # clips in the logits check (the transcripts check covers all)


def evaluate_recognizers(
    recognizers: Mapping[str, SpeechRecognizer],
    clips: Sequence[Clip],
    references: Sequence[str] | None,
    *,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Transcripts, WER and prefix logits of every backend (``torch`` first) on the same clips.

    Returns:
        ``transcripts`` and ``wer`` per backend, ``parity`` (differing transcripts and max logit differences per ORT
        backend vs torch, the prefix length), ``nonfinite`` per backend, ``num_clips`` and ``audio_seconds``.
    """
    torch_rec = recognizers["torch"]
    waves = [c.wave for c in clips]
    transcripts = {name: rec.transcribe(waves, batch_size=batch_size) for name, rec in recognizers.items()}

    features = torch_rec.features(waves[:LOGIT_CLIPS])
    prefix = torch_rec.generate_ids(features)[:, :PREFIX_TOKENS]
    logits = {name: rec.prefix_logits(features, prefix) for name, rec in recognizers.items()}

    refs = list(references) if references is not None else None
    wer = {name: word_error_rate(refs, t) if refs is not None else None for name, t in transcripts.items()}
    parity: dict[str, Any] = {"prefix_tokens": int(prefix.shape[1]), "logit_clips": int(prefix.shape[0])}
    for name in recognizers:
        if name == "torch":
            continue
        short = name.removeprefix("onnx_")
        differing = [i for i, (a, b) in enumerate(zip(transcripts["torch"], transcripts[name], strict=True)) if a != b]
        parity[f"{short}_differing_transcripts"] = len(differing)
        parity[f"{short}_differing_examples"] = [
            {"clip": clips[i].name, "torch": transcripts["torch"][i], name: transcripts[name][i]} for i in differing[:5]
        ]
        parity[f"{short}_max_abs_logit_diff"] = float(np.abs(logits[name] - logits["torch"]).max())
    return {
        "num_clips": len(clips),
        "audio_seconds": round(sum(c.seconds for c in clips), 3),
        "transcripts": transcripts,
        "wer": wer,
        "wer_references": "test transcripts" if refs is not None else "ORT fp32 transcripts",
        "parity": parity,
        "nonfinite": {name: bool(not np.isfinite(lg).all()) for name, lg in logits.items()},
    }


def int8_wer_delta(ev: Mapping[str, Any]) -> float | None:
    """WER(int8) - WER(fp32): against the references, else against the fp32 transcripts (then fp32's WER is 0)."""
    transcripts = ev["transcripts"]
    if "onnx_int8" not in transcripts:
        return None
    if ev["wer"]["onnx_int8"] is not None:
        return ev["wer"]["onnx_int8"] - ev["wer"]["onnx_fp32"]
    fp32 = transcripts["onnx_fp32"]
    if not any(t.strip() for t in fp32):
        return 0.0 if fp32 == transcripts["onnx_int8"] else float("inf")
    return word_error_rate([t if t.strip() else "<empty>" for t in fp32], transcripts["onnx_int8"])


def gate_problems(ev: Mapping[str, Any], *, logits_atol: float, max_int8_wer_increase: float) -> list[str]:
    """Why the export must be refused (empty when every gate passes)."""
    parity = ev["parity"]
    problems = [f"non-finite decoder logits from {name}" for name, bad in ev["nonfinite"].items() if bad]
    differing = parity["fp32_differing_transcripts"]
    if differing:
        first = parity["fp32_differing_examples"][0]
        problems.append(
            f"ORT fp32 transcripts differ from PyTorch's on {differing} of {ev['num_clips']} clips "
            f"(first: {first['clip']}: torch {first['torch']!r} vs onnx {first['onnx_fp32']!r})"
        )
    diff = parity["fp32_max_abs_logit_diff"]
    if not diff <= logits_atol:  # `not <=`: a NaN difference fails too
        problems.append(
            f"ORT fp32 decoder logits differ from PyTorch's by up to {diff:.3g} on a {parity['prefix_tokens']}-token "
            f"prefix (> {logits_atol:g})"
        )
    delta = int8_wer_delta(ev)
    if delta is not None and not delta <= max_int8_wer_increase + 1e-12:
        problems.append(
            f"int8 raises WER by {delta:.4f} over fp32 ({ev['wer_references']}), more than the allowed "
            f"{max_int8_wer_increase:g} (export.max_int8_wer_increase; or export.quantize=false)"
        )
    return problems
