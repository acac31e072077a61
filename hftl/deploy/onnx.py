"""ONNX export with a parity gate, dynamic int8 quantization and an export report.

Everything works from local folders (no Hub) and is modality-agnostic: the caller passes the already
preprocessed evaluation inputs keyed by the graph's input names (``input_ids``..., ``pixel_values``,
``input_features``), and the same arrays go to PyTorch, ORT fp32 and ORT int8.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

from hftl.config import ExportConfig
from hftl.deploy.default_variant import choose
from hftl.deploy.latency import measure_latency
from hftl.deploy.parity import evaluate_backends, load_torch_model, task_auto_classes
from hftl.deploy.runtime import FP32_FILE, INT8_FILE, make_session
from hftl.errors import ExportError
from hftl.files import replace_dir, write_json_atomic
from hftl.run import cpu, rundir

__all__ = [
    "INT8_OPERATORS",
    "ExportError",
    "activation_matmuls",
    "choose_quantization_config",
    "evaluate_backends",
    "export_and_check",
    "export_onnx",
    "load_torch_model",
    "measure_latency",
    "quantize_dynamic_int8",
    "task_auto_classes",
]

REPORT_FILE = rundir.EXPORT_REPORT





def _quantization_isa(machine: str, flags: set[str]) -> str:
    """Pick the AutoQuantizationConfig preset for a CPU (``.avx2`` made int8 slower than fp32 on VNNI CPUs)."""
    if machine.lower() in {"arm64", "aarch64"}:
        return "arm64"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def int8_kernel_isa() -> str:
    """The instruction set of the u8s8 GEMM that onnxruntime's MLAS runs our int8 MatMuls with on this CPU."""
    from hftl.run import cpu

    return f"{cpu.int8_isa()} (MLAS u8s8 GEMM)"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


# Only MatMuls, each with its own scale per output channel, and only those multiplying by a weight. Measured on MiniLM
# LoRA / BBC News test (445 rows, bench/inference.py): optimum's default set per-tensor lost 0.67 point of accuracy,
# per-channel 0.45 (the attention-score MatMuls and the embedding table, quantized too, cost the rest), weight
# MatMuls per-channel lost nothing, at the same speed; the word-embedding table stays fp32 (a bigger file).
INT8_OPERATORS = ["MatMul"]


def choose_quantization_config(
    per_channel: bool = True, *, operators: list[str] | None = None, nodes_to_exclude: list[str] | None = None
):
    """Dynamic int8 QuantizationConfig for this CPU, from its flags.

    Args:
        per_channel: One scale per output channel of each weight (optimum's own default for these presets).
        operators: Op types to quantize; None = optimum's default dynamic set.
        nodes_to_exclude: Node names left in fp32.

    Returns:
        ``(name, config)``, name one of ``arm64``, ``avx512_vnni``, ``avx512``, ``avx2``.
    """
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    name = _quantization_isa(platform.machine(), _cpu_flags())
    config = getattr(AutoQuantizationConfig, name)(
        is_static=False, per_channel=per_channel, operators_to_quantize=operators, nodes_to_exclude=nodes_to_exclude
    )
    return name, config


def activation_matmuls(onnx_path: Path) -> list[str]:
    """MatMul nodes with no weight input (attention scores, attention x values): both sides are activations.

    onnxruntime's own ``quantize_dynamic`` skips these (``MatMulConstBOnly``); optimum's quantizer does not.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    constants = {t.name for t in model.graph.initializer}
    constants |= {out for n in model.graph.node if n.op_type == "Constant" for out in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and not any(i in constants for i in n.input)
    ]


def export_onnx(model_dir: Path, out_dir: Path, task: str, *, opset: int | None = None) -> Path:
    """Export a local merged transformers model (plus tokenizer/processor files) with optimum.

    Returns:
        ``out_dir / "model.onnx"``; optimum also writes ``config.json`` and the preprocessor files there.
    """
    from optimum.exporters.onnx import main_export

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no transformers model (config.json) in {model_dir}")
    if (model_dir / "adapter_config.json").is_file():
        # optimum knows nothing of adapters and would export the bare base model.
        raise ExportError(
            f"{model_dir} holds a PEFT adapter: merge it first (merge_and_unload + save_pretrained)"
        )
    # optimum traces with 30 s of mel frames; a Whisper encoder cut to short clips takes only 2 * max_source_positions.
    model_config = json.loads((model_dir / "config.json").read_text())
    shapes = {"nb_max_frames": 2 * model_config["max_source_positions"]} if model_config.get("model_type") == "whisper" else {}
    main_export(
        str(model_dir),
        output=Path(out_dir),
        task=task,
        opset=opset,
        **shapes,
        # Our own gate checks parity on real inputs and fails on NaN; optimum's only warns.
        do_validation=False,
        # A sentence-transformers folder would otherwise be detected as such and exported as an embedder.
        library_name="transformers",
        local_files_only=True,
    )
    onnx_path = Path(out_dir) / FP32_FILE
    if not onnx_path.is_file():
        raise ExportError(f"optimum wrote no {FP32_FILE} into {out_dir}")
    return onnx_path


@contextlib.contextmanager
def _scratch_cwd():
    """Run in a throwaway working directory: onnxruntime's quantization tools drop temp files in the CWD."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="hftl-quant-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(old)


def quantize_dynamic_int8(
    onnx_dir: Path,
    *,
    operators: list[str] | None = INT8_OPERATORS,
    per_channel: bool = True,
    weights_only: bool = True,
    source: str = FP32_FILE,
) -> tuple[Path, dict]:
    """Dynamic int8 quantization of ``onnx_dir/source`` into ``onnx_dir/<stem>_quantized.onnx``.

    Args:
        operators: Op types to quantize; None = onnxruntime's default dynamic set (also Gather, Conv, Attention...).
        per_channel: A scale per output channel of each weight, rather than one per tensor.
        weights_only: Leave MatMuls between two activations in fp32 (see :func:`activation_matmuls`).
        source: The fp32 graph in ``onnx_dir`` (``model.onnx``).

    Returns:
        ``(path, info)`` with the preset name, operators, per_channel, dtypes and the nodes left in fp32.
    """
    from optimum.onnxruntime import ORTQuantizer

    onnx_dir = Path(onnx_dir).resolve()  # absolute: quantization runs from a scratch CWD
    if not (onnx_dir / source).is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_dir / source}")
    excluded = activation_matmuls(onnx_dir / source) if weights_only else []
    name, config = choose_quantization_config(per_channel, operators=operators, nodes_to_exclude=excluded)
    with _scratch_cwd():
        quantizer = ORTQuantizer.from_pretrained(onnx_dir, file_name=source)
        quantizer.quantize(config, save_dir=onnx_dir)
    info = {
        "config": name,  # optimum's preset: it sets the format (u8 activations, s8 weights), not the kernels
        # onnxruntime picks MLAS's u8s8 GEMM kernel at run time from the CPU: AMX tiles where amx_int8 is present and
        # granted, else AVX512-VNNI / AVX-VNNI, else AVX2 (ORT does not report it; the flags and the grant decide).
        "kernel_isa": int8_kernel_isa(),
        "mode": "dynamic",
        "operators": [getattr(op, "value", op) for op in config.operators_to_quantize],
        "per_channel": bool(config.per_channel),
        "weights_only": weights_only,
        "activation_matmuls_in_fp32": len(excluded),
        "weights_dtype": config.weights_dtype.name,
        "activations_dtype": config.activations_dtype.name,
    }
    return onnx_dir / f"{Path(source).stem}_quantized.onnx", info


def _gate(ev: dict, parity_atol: float, max_int8_accuracy_drop: float) -> list[str]:
    """Reasons the export must be refused (empty when every gate passes)."""
    problems = [f"non-finite logits from {name}" for name, bad in ev["nonfinite"].items() if bad]
    fp32_diff = ev["parity"]["fp32_max_abs_diff"]
    # `not <=` so that a NaN difference fails too (NaN > atol is False).
    if not fp32_diff <= parity_atol:
        problems.append(f"fp32 max abs logit diff {fp32_diff:.3g} > atol {parity_atol:g}")
    if "onnx_int8" in ev["logits"]:
        acc = ev["accuracy"]
        if acc["torch"] is not None:
            drop = acc["torch"] - acc["onnx_int8"]
            if drop > max_int8_accuracy_drop + 1e-12:
                problems.append(
                    f"int8 accuracy {acc['onnx_int8']:.4f} vs torch {acc['torch']:.4f}: drop {drop:.4f} "
                    f"> {max_int8_accuracy_drop:g}"
                )
        # Without labels, gate on agreeing with torch's predictions instead.
        elif ev["parity"]["int8_agreement"] < 1.0 - max_int8_accuracy_drop - 1e-12:
            problems.append(
                f"int8 agrees with torch on {ev['parity']['int8_agreement']:.4f} of predictions only"
            )
    return problems


def _size_mb(*paths: Path) -> float | None:
    present = [p for p in paths if p.is_file()]
    return round(sum(p.stat().st_size for p in present) / 2**20, 3) if present else None


def _opset(onnx_path: Path) -> int | None:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _versions() -> dict[str, str | None]:
    out = {}
    for dist in ("onnxruntime", "optimum", "optimum-onnx", "onnx", "torch", "transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _jsonable(value):
    """Round floats and turn non-finite ones into None so the report is strict JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        return round(float(value), 8) if math.isfinite(value) else None
    return value


def _report(
    task: str, onnx_path: Path, model_dir: Path, work: Path, ev: dict, export: ExportConfig, quant_info: dict | None
) -> dict:
    """export_report.json before the latency measurement (which fills latency_ms, speedup_vs_torch, num_threads)."""
    return {
        "task": task,
        "opset": _opset(onnx_path),
        "versions": _versions(),
        "model_dir": str(model_dir),
        "num_samples": ev["num_samples"],
        "inputs": [i.name for i in make_session(onnx_path).get_inputs()],
        "parity": {**ev["parity"], "atol": export.parity_atol},
        "accuracy": {"onnx_int8": None, **ev["accuracy"], "max_int8_drop": export.max_int8_accuracy_drop},
        "nonfinite": ev["nonfinite"],
        "quantization": quant_info,
        "cpu": cpu.describe(),  # what the timings below hold for (hftl.deploy.default_variant)
        "sizes_mb": {
            FP32_FILE: _size_mb(onnx_path, work / f"{FP32_FILE}_data"),
            INT8_FILE: _size_mb(work / INT8_FILE),
            "torch_safetensors": _size_mb(*sorted(model_dir.glob("*.safetensors"))),
        },
        "latency_ms": None,
        "speedup_vs_torch": None,
        "num_threads": None,
        "latency_method": None,
        "default": None,
    }


def export_and_check(
    model_dir: Path,
    out_dir: Path,
    task: str,
    features: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    export: ExportConfig | None = None,
    *,
    quantize_operators: list[str] | None = INT8_OPERATORS,
    measure_speed: bool = True,
    batch_size: int = 32,
    auto_class: str | None = None,
    extra_files: Mapping[str, Path] | None = None,
) -> dict:
    """Export, quantize, check and report as ``export`` (the run config's export section) says; ``out_dir`` is
    (re)placed only when every gate passes.

    ``extra_files`` (name -> source path) are copied next to the model before the swap, so they arrive with it.

    Gates: no NaN/inf logits; fp32 max abs logit diff vs torch <= ``parity_atol``; int8 accuracy drop vs torch
    <= ``max_int8_accuracy_drop`` (int8 moves logits by ~1 while keeping accuracy, so no logit tolerance).

    Returns:
        The report, also written to ``out_dir/export_report.json``.

    Raises:
        ExportError: A gate failed (message with the numbers; ``.report`` holds them). ``out_dir`` is untouched.
    """
    export = export or ExportConfig()
    model_dir, out_dir, work = work_folder(model_dir, out_dir)
    try:
        onnx_path = export_onnx(model_dir, work, task, opset=export.opset)
        quant_info = None
        if export.quantize:
            try:
                _, quant_info = quantize_dynamic_int8(work, operators=quantize_operators)
            except Exception as exc:
                raise ExportError(f"int8 quantization failed: {exc}; try quantize=False") from exc
        ev = evaluate_backends(
            model_dir, work, features, labels, batch_size=batch_size, task=task, auto_class=auto_class
        )
        report = _report(task, onnx_path, model_dir, work, ev, export, quant_info)
        problems = _gate(ev, export.parity_atol, export.max_int8_accuracy_drop)
        if problems:
            raise ExportError(f"ONNX export of {model_dir} refused: " + "; ".join(problems), report)
        if measure_speed:
            lat = measure_latency(
                model_dir, work, features, task=task, auto_class=auto_class, num_threads=export.num_threads,
                repeats=export.latency_repeats,
            )  # fmt: skip
            report.update(
                latency_ms=lat["latency_ms"],
                speedup_vs_torch=lat["speedup_vs_torch"],
                num_threads=lat["num_threads"],
                latency_method=lat["method"],
            )
            # what `hftl predict` / `hftl serve` run by default: the fastest variant within 0.5 point of fp32
            report["default"] = choose(_jsonable(report), "onnxruntime", cpu_now=report["cpu"]).as_dict()
        publish(work, out_dir, _jsonable(report), extra_files)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _jsonable(report)


def work_folder(model_dir: Path, out_dir: Path) -> tuple[Path, Path, Path]:
    """(model_dir, out_dir) resolved, and a new empty folder to build the export in: a sibling of out_dir, so the
    final move (:func:`publish`) is a rename on the same filesystem.

    Raises:
        ValueError: out_dir is the model folder or one of its parents (publishing would replace the model).
    """
    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir).resolve()
    if out_dir == model_dir or out_dir in model_dir.parents:
        raise ValueError(f"out_dir {out_dir} would replace the model folder {model_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return model_dir, out_dir, Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))


def publish(work: Path, out_dir: Path, report: dict, extra_files: Mapping[str, Path] | None) -> None:
    """Put the extra files and the report into the finished export folder ``work``, then swap it in for ``out_dir``."""
    for name, source in (extra_files or {}).items():
        shutil.copyfile(source, work / name)
    write_json_atomic(work / REPORT_FILE, report)
    replace_dir(work, out_dir)
