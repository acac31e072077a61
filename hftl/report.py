"""One table per run directory from results.json (+ onnx/export_report.json): what `make demo` prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hftl.deploy.speech_report import speech_report_lines
from hftl.run import rundir
from hftl.run.metrics.per_class import format_per_class
from hftl.run.record import read_record, results_path


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def summarize(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    if not results_path(run_dir).is_file():
        return f"{run_dir}: no results.json (run not finished)"
    record = read_record(run_dir)
    run, train, params, sizes = record.run, record.train, record.params, record.data.sizes
    lines = [
        f"run {run_dir}: {run.method} on {run.model}, data {run.dataset} "
        f"({sizes.get('train')} train / {sizes.get('test')} test), seed {run.seed}",
        f"  params       {params['trainable']:,} trainable of {params['total']:,} "
        f"({100 * params['trainable'] / params['total']:.2f}%)",
        f"  training     {train.steps} steps, {train.runtime_s:.1f} s, {train.samples_per_second:.1f} samples/s",
        "  validation   " + "  ".join(f"{k} {v:.4f}" for k, v in record.eval.items()),
        "  test         " + "  ".join(f"{k} {v:.4f}" for k, v in record.test.items()),
    ]
    if record.per_class:  # runs written before per-class metrics have none
        lines += format_per_class(record.per_class, indent="    ")
    for record_path in sorted((run_dir / "evaluations").glob("*/evaluation.json")):  # `hftl evaluate` on other data
        ev = json.loads(record_path.read_text())
        scores = "  ".join(f"{k} {v:.4f}" for k, v in ev["metrics"].items())
        lines.append(f"  evaluated    {ev['source']} ({ev['rows']} rows, {ev['backend']}): {scores}")
    report = _load(run_dir / "onnx" / rundir.EXPORT_REPORT)
    if report is not None and report.get("task") == "automatic-speech-recognition":
        lines += speech_report_lines(report, indent="  onnx         ")
    elif report is not None:
        acc, lat, par = report["accuracy"], report.get("latency_ms") or {}, report["parity"]
        lines.append(f"  onnx parity  fp32 max|diff| {par['fp32_max_abs_diff']:.1e}, int8 agreement {par.get('int8_agreement')}")
        lines.append(f"  {'backend':<12} {'test acc':>9} {'b1 ms':>8} {'b32 ms':>8} {'b1 speedup':>11}")
        b1, b32 = lat.get("batch_1", {}), lat.get("batch_32", {})
        for name in ("torch", "onnx_fp32", "onnx_int8"):
            if acc.get(name) is None:
                continue
            speed = b1.get("torch") / b1[name] if b1.get(name) and b1.get("torch") else None
            lines.append(
                f"  {name:<12} {acc[name]:>9.4f} {_ms(b1.get(name)):>8} {_ms(b32.get(name)):>8} "
                f"{(f'{speed:.2f}x' if speed else '-'):>11}"
            )
        if report.get("default"):  # what `hftl predict` / `hftl serve` run from this export on the CPU it was timed on
            lines.append(f"  onnx served  {report['default']['variant']}: {report['default']['reason']}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"
