"""OpenVINO IR export (fp32, parity-gated) and NNCF post-training int8 (accuracy-gated), and an OpenVINO classifier.

The optional extra ``pip install hftl[openvino]`` (optimum-intel, openvino, nncf). The IR is converted from the
ONNX graph hftl already exports and checks (``hftl.deploy.onnx.export_onnx``), so the three modalities go through
one converter that OpenVINO itself maintains (``openvino.convert_model``), and the IR has the ONNX graph's inputs.

Precision: OpenVINO's CPU plugin runs fp32 IR in bf16 on CPUs with AMX/AVX512-BF16 unless told otherwise
(``INFERENCE_PRECISION_HINT``). The parity gate compiles with ``f32``; serving uses the hint saved in the export's
report (``precision``: f32 or bf16), so what was checked is what runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hftl.deploy.runtime import default_num_threads, softmax
from hftl.errors import ConfigError, HftlError
from hftl.run import rundir

logger = logging.getLogger("hftl")

FP32_XML = "openvino_model.xml"
INT8_XML = "openvino_model_int8.xml"
REPORT_FILE = rundir.EXPORT_REPORT
EXTRA = "pip install 'hftl[openvino]'"


def require_openvino():
    """The openvino module, or an error naming the extra to install."""
    try:
        import openvino
    except ImportError as err:
        raise HftlError(f"the OpenVINO backend needs the openvino extra: {EXTRA} ({err})") from err
    return openvino


def inference_hint(precision: str) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for the precision hftl serves (fp32 or bf16): fp32 -> ``f32``, so the
    fp32 IR answers like PyTorch (the CPU plugin would run it in bf16 on AMX / AVX512-BF16 CPUs unasked); bf16 ->
    ``bf16``, the same IR under the bf16 hint. The int8 IR is served under ``f32`` (its non-int8 layers in fp32).

    Raises:
        ConfigError: any other precision.
    """
    hints = {"fp32": "f32", "bf16": "bf16"}
    if precision not in hints:
        raise ConfigError(f"OpenVINO serves precision fp32 or bf16, got {precision!r}")
    return hints[precision]


def compile_model(xml: Path, *, precision: str = "f32", num_threads: int | None = None):
    """Compile an IR for the CPU with a fixed inference precision (f32 / bf16) and thread count."""
    ov = require_openvino()
    if not Path(xml).is_file():
        raise FileNotFoundError(f"OpenVINO model not found: {xml}")
    config = {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": num_threads or default_num_threads(),
        "PERFORMANCE_HINT": "LATENCY",
    }
    return ov.Core().compile_model(str(xml), "CPU", config)


def feed_for(compiled, features: Mapping[str, np.ndarray], rows: slice | None = None) -> dict[str, np.ndarray]:
    """The features the IR declares, cast to its element types (tokenizers hand out int32 where BERT wants int64)."""
    feed = {}
    for port in compiled.inputs:
        name = port.get_any_name()
        if name not in features:
            raise KeyError(f"OpenVINO model needs input {name!r}; features have {sorted(features)}")
        array = np.asarray(features[name]) if rows is None else np.asarray(features[name])[rows]
        feed[name] = np.ascontiguousarray(array, dtype=port.get_element_type().to_dtype())
    return feed


def run_logits(compiled, features: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> np.ndarray:
    first = compiled.inputs[0].get_any_name()
    n = len(features[first])
    step = batch_size or max(n, 1)
    output = compiled.outputs[0]
    request = compiled.create_infer_request()
    chunks = [request.infer(feed_for(compiled, features, slice(i, i + step)))[output] for i in range(0, n, step)]
    return np.concatenate(chunks).astype(np.float32, copy=False)


def kernel_isa(compiled) -> dict[str, int]:
    """The CPU plugin's primitive per executed MatMul/FullyConnected node (e.g. brgemm_avx512_amx_I8), counted.

    Read from the compiled model's runtime graph: what actually runs, not what the flags suggest.
    """
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = str(info["layerType"].astype(str)) if "layerType" in info else op.get_type_name()
        if layer in ("FullyConnected", "MatMul") and "primitiveType" in info:
            counts[str(info["primitiveType"].astype(str))] += 1
    return dict(counts.most_common())


def convert_onnx(onnx_path: Path, xml: Path) -> Path:
    ov = require_openvino()
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml), compress_to_fp16=False)  # the IR's weights stay fp32; precision is a runtime hint
    return xml


def quantize_int8(
    fp32_xml: Path, int8_xml: Path, calibration: Mapping[str, np.ndarray], *, subset_size: int = 300
) -> dict[str, Any]:
    """NNCF post-training static int8 (activations and weights) calibrated on ``calibration`` rows, one per call."""
    ov = require_openvino()
    import nncf

    model = ov.Core().read_model(str(fp32_xml))
    names = [p.get_any_name() for p in model.inputs]
    n = len(calibration[names[0]])
    items = [{name: np.asarray(calibration[name])[i : i + 1] for name in names} for i in range(n)]
    with contextlib.redirect_stdout(sys.stderr):  # NNCF draws progress bars on stdout; stdout is for results
        quantized = nncf.quantize(
            model,
            nncf.Dataset(items),
            model_type=nncf.ModelType.TRANSFORMER,  # keeps softmax/layer-norm inputs in fp32, as NNCF advises for BERTs
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=min(subset_size, n),
        )
    ov.save_model(quantized, str(int8_xml), compress_to_fp16=False)
    return {"method": "nncf post-training static", "model_type": "transformer", "calibration_rows": min(subset_size, n)}


def export_openvino(
    model_dir: Path,
    out_dir: Path,
    task: str,
    features: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    *,
    calibration: Mapping[str, np.ndarray] | None = None,
    parity_atol: float = 1e-4,
    max_int8_accuracy_drop: float = 0.01,
    num_threads: int | None = None,
    batch_size: int = 32,
    auto_class: str | None = None,
    extra_files: Mapping[str, Path] | None = None,
    latency_repeats: int = 20,
) -> dict[str, Any]:
    """IR fp32 (+ int8 when ``calibration`` is given) into ``out_dir``, which is (re)placed only if the gates pass.

    Gates: finite logits; fp32 IR (f32 hint) max abs logit diff vs PyTorch <= ``parity_atol``; int8 accuracy drop vs
    PyTorch <= ``max_int8_accuracy_drop`` (agreement with PyTorch's predictions where there are no labels).
    On a CPU with bf16 instructions the fp32 IR under the bf16 hint is scored too (not gated: it is a candidate for
    the serving default only where it keeps accuracy). Then PyTorch and every variant are timed at batch 1 and 32
    (``latency_repeats`` calls each, shuffled blocks) and the report records the serving default
    (hftl.deploy.default_variant) with the CPU it was measured on; ``latency_repeats=0`` skips the timing.

    Raises:
        ExportError: a gate failed (``.report`` holds the numbers); ``out_dir`` is untouched.
    """
    from hftl.deploy.default_variant import choose
    from hftl.deploy.onnx import ExportError, _jsonable, export_onnx, publish
    from hftl.deploy.parity import load_torch_model
    from hftl.run import cpu

    require_openvino()
    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="hftl-onnx-") as onnx_dir:
            onnx_path = export_onnx(model_dir, Path(onnx_dir), task)
            convert_onnx(onnx_path, work / FP32_XML)
            for name in Path(onnx_dir).iterdir():  # config.json and the processor files, for serving
                if name.suffix != ".onnx" and not name.name.endswith("_data") and name.is_file():
                    shutil.copyfile(name, work / name.name)
        quant = quantize_int8(work / FP32_XML, work / INT8_XML, calibration) if calibration is not None else None
        compiled = {"openvino_fp32": compile_model(work / FP32_XML, precision="f32", num_threads=num_threads)}
        if cpu.native_bf16():  # OpenVINO's own default on such CPUs; scored so the serving default can weigh it
            compiled["openvino_bf16"] = compile_model(work / FP32_XML, precision="bf16", num_threads=num_threads)
        if quant is not None:
            compiled["openvino_int8"] = compile_model(work / INT8_XML, precision="f32", num_threads=num_threads)
        logits = {name: run_logits(c, features, batch_size=batch_size) for name, c in compiled.items()}
        import torch

        model = load_torch_model(model_dir, task=task, auto_class=auto_class)
        feed = feed_for(compiled["openvino_fp32"], features)
        with torch.inference_mode():
            logits["torch"] = np.concatenate([
                model(**{k: torch.from_numpy(v[i : i + batch_size]) for k, v in feed.items()}).logits.float().numpy()
                for i in range(0, len(next(iter(feed.values()))), batch_size)
            ])  # fmt: skip
        finite = {k: bool(np.isfinite(v).all()) for k, v in logits.items()}
        accuracy = {k: float((v.argmax(-1) == labels).mean()) if labels is not None and finite[k] else None
                    for k, v in logits.items()}  # fmt: skip
        agreement = {k: float((v.argmax(-1) == logits["torch"].argmax(-1)).mean()) for k, v in logits.items()}
        report = {
            "backend": "openvino",
            "task": task,
            "num_samples": len(logits["torch"]),
            "precision": "f32",
            "parity": {"fp32_max_abs_diff": float(np.abs(logits["openvino_fp32"] - logits["torch"]).max()),
                       "atol": parity_atol, "agreement": agreement},  # fmt: skip
            "accuracy": {**accuracy, "max_int8_drop": max_int8_accuracy_drop},
            "nonfinite": {k: not ok for k, ok in finite.items()},
            "quantization": quant,
            "cpu": cpu.describe(),
            "int8_kernels": kernel_isa(compiled["openvino_int8"]) if quant is not None else None,
            "fp32_kernels": kernel_isa(compiled["openvino_fp32"]),
            "versions": _versions(),
        }
        problems = [f"non-finite logits from {k}" for k, bad in report["nonfinite"].items() if bad and k != "openvino_bf16"]
        if not report["parity"]["fp32_max_abs_diff"] <= parity_atol:
            problems.append(f"fp32 IR max abs logit diff {report['parity']['fp32_max_abs_diff']:.3g} > atol {parity_atol:g}")
        if quant is not None:
            base, int8 = (accuracy["torch"], accuracy["openvino_int8"]) if labels is not None else (1.0, agreement["openvino_int8"])
            if base - int8 > max_int8_accuracy_drop + 1e-12:
                problems.append(f"int8 accuracy {int8:.4f} vs torch {base:.4f}: drop > {max_int8_accuracy_drop:g}")
        if problems:
            raise ExportError(f"OpenVINO export of {model_dir} refused: " + "; ".join(problems), _jsonable(report))
        if latency_repeats > 0:
            report.update(time_variants(compiled, model, feed, latency_repeats, num_threads))
            # what `hftl predict` / `hftl serve` run by default: the fastest variant within 0.5 point of fp32
            report["default"] = choose(_jsonable(report), "openvino", cpu_now=report["cpu"]).as_dict()
        publish(work, out_dir, _jsonable(report), extra_files)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _jsonable(report)


def time_variants(
    compiled: dict[str, Any], model: Any, feed: Mapping[str, np.ndarray], repeats: int, num_threads: int | None = None
) -> dict[str, Any]:
    """Median ms per call of PyTorch fp32 eager and each compiled variant at batch 1 and 32, in shuffled blocks, at
    one thread count (``num_threads``; the variants were compiled with it)."""
    from hftl.deploy.latency import _rows, speedups, time_beside_torch

    requests = {name: c.create_infer_request() for name, c in compiled.items()}

    def openvino_runners(size: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        batch = _rows(feed, size)
        return batch, {name: (lambda r=request, b=batch: r.infer(b)) for name, request in requests.items()}

    timed, _ = time_beside_torch(model, openvino_runners, num_threads=num_threads or default_num_threads(), repeats=repeats)
    latency = {key: {k: round(v, 3) for k, v in row.items()} for key, row in timed.items()}
    return {"latency_ms": latency, "speedup_vs_torch": speedups(latency),
            "latency_method": {"statistic": "median ms per call", "repeats": repeats, "block_order": "shuffled per round"}}  # fmt: skip


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for dist in ("openvino", "nncf", "optimum-intel"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


class OpenVinoClassifier:
    """An exported IR (``hftl export RUN --backend openvino``) on the CPU, with the labels of its config.json."""

    def __init__(self, folder: Path, *, quantized: bool = False, precision: str = "fp32", num_threads: int | None = None):
        """``precision``: fp32 or bf16 (:func:`inference_hint`), for the fp32 IR; ``quantized`` serves the int8 IR."""
        self.folder = Path(folder)
        xml = self.folder / (INT8_XML if quantized else FP32_XML)
        config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        self.id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
        self.compiled = compile_model(xml, precision=inference_hint(precision), num_threads=num_threads)

    def logits(self, features: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> np.ndarray:
        return run_logits(self.compiled, features, batch_size=batch_size)

    def classify(self, features: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> list[tuple[str, float]]:
        probs = softmax(self.logits(features, batch_size=batch_size))
        return [(self.id2label.get(int(i), f"LABEL_{int(i)}"), float(p[i])) for i, p in zip(probs.argmax(-1), probs, strict=True)]

