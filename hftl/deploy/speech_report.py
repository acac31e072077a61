"""A speech export report (export_report.json) as text lines: for `hftl export` and `hftl summary` (no heavy imports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def speech_report_lines(report: Mapping[str, Any], indent: str = "") -> list[str]:
    """Transcript parity, logits, WER and latency of a speech export report, one line each."""
    parity, wer = report["parity"], report["wer"]
    int8_logits = parity.get("int8_max_abs_logit_diff")
    cap = report.get("max_new_tokens")
    lines = [
        "greedy decoding" + (f", at most {cap} new tokens (the run's asr.max_new_tokens)" if cap else ""),
        f"transcripts differing from PyTorch: fp32 {parity['fp32_differing_transcripts']}"
        f"  int8 {parity.get('int8_differing_transcripts', '-')}  (of {report['num_clips']})",
        f"max |logit diff| on a {parity['prefix_tokens']}-token prefix: fp32 {parity['fp32_max_abs_logit_diff']:.2e}"
        f" (gate {parity['logits_atol']:g})  int8 " + (f"{int8_logits:.2e}" if int8_logits is not None else "-"),
    ]
    cells = "  ".join(f"{k} {wer[k]:.4f}" for k in ("torch", "onnx_fp32", "onnx_int8") if wer.get(k) is not None)
    delta = wer.get("int8_minus_fp32")
    lines.append(f"WER ({wer['references']}): {cells or '-'}  int8 - fp32 " + (f"{delta:.4f}" if delta is not None else "-"))
    latency = report.get("latency") or {}
    for mode, row in (latency.get("ms_per_audio_second") or {}).items():
        lines.append(f"ms per second of audio, {mode}: " + "  ".join(f"{k} {v:.1f}" for k, v in row.items()))
    return [indent + line for line in lines]
