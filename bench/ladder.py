"""Serving MiniLM: the latency ladder PyTorch fp32/bf16, ONNX Runtime fp32/int8, OpenVINO fp32/bf16/int8 (and CUDA).

    python bench/ladder.py [--run RUN_DIR] [--repeats 40] [--test-rows N] [--quick]

The text run (``--run``, e.g. runs/demo; else bench/inference.py's short LoRA run) is exported twice, as
``hftl export`` does it: ONNX (fp32 + dynamic int8, hftl.deploy.onnx) and OpenVINO IR (fp32 + NNCF int8 calibrated
on 300 train rows, hftl.deploy.openvino). Every backend is scored on the test split (fixed-length inputs, as the
tokenizer pads them) and timed at batch 1 and 32 with the same thread count, in shuffled blocks
(hftl.deploy.latency.time_blocks). bf16 rows appear only on a CPU with bf16 instructions. The share of peak is the
model's FLOPs per call (counted by torch) over the call's time, against the CPU's peak for the backend's dtype.
Where torch sees a CUDA device, the same table adds PyTorch fp32 / bf16 on it and ONNX Runtime's CUDA / TensorRT
providers where the installed onnxruntime has them (speed-ups still against PyTorch fp32 on the CPU).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch

DTYPE = {"PyTorch fp32": "fp32", "PyTorch bf16": "bf16", "ORT fp32": "fp32", "ORT int8": "int8",
         "OpenVINO fp32": "fp32", "OpenVINO bf16": "bf16", "OpenVINO int8": "int8"}  # fmt: skip
# ORT's GPU execution providers, where the installed onnxruntime has them (onnxruntime-gpu; the pinned CPU wheel has not)
ORT_GPU_PROVIDERS = {"ORT CUDA fp32": "CUDAExecutionProvider", "ORT TensorRT fp32": "TensorrtExecutionProvider"}


def cuda_backends(model_dir: Path, onnx_fp32: Path) -> dict[str, Any]:
    """The same ladder's GPU rows where torch sees a CUDA device: PyTorch fp32 and bf16 autocast on it, and ONNX
    Runtime's CUDA / TensorRT providers where installed. Each call copies its inputs in and its logits out (a served
    request does both; copying out also waits for the GPU, so the timer sees finished work). No rows without CUDA."""
    if not torch.cuda.is_available():
        harness.log("  no CUDA device: the ladder's GPU rows are skipped")
        return {}
    import onnxruntime as ort

    from hftl.deploy.parity import load_torch_model
    from hftl.deploy.runtime import run_logits, session_feed

    model = load_torch_model(model_dir).to("cuda")
    names = set(model.forward.__code__.co_varnames)

    def torch_call(features, dtype):
        batch = {k: torch.as_tensor(v).to("cuda") for k, v in features.items() if k in names}
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not torch.float32):
            return model(**batch).logits.float().cpu().numpy()

    out: dict[str, Any] = {"PyTorch CUDA fp32": lambda f: torch_call(f, torch.float32)}
    if torch.cuda.is_bf16_supported():
        out["PyTorch CUDA bf16"] = lambda f: torch_call(f, torch.bfloat16)
    available = ort.get_available_providers()
    for name, provider in ORT_GPU_PROVIDERS.items():
        if provider not in available:
            harness.log(f"  {name}: onnxruntime here has no {provider} (onnxruntime-gpu brings it): skipped")
            continue
        session = ort.InferenceSession(str(onnx_fp32), providers=[provider, "CPUExecutionProvider"])
        out[name] = lambda f, s=session: run_logits(s, session_feed(s, f))
    return out


def backends(run_dir: Path, work: Path, features, labels, calibration, threads: int) -> tuple[dict[str, Any], dict]:
    """Name -> callable(features) -> logits, for every backend this machine has; and the export facts."""
    from hftl.deploy import openvino as ov
    from hftl.deploy.onnx import export_onnx, int8_kernel_isa, quantize_dynamic_int8
    from hftl.deploy.runtime import FP32_FILE, INT8_FILE, make_session, run_logits, session_feed
    from hftl.deploy.torch_backend import TorchClassifier
    from hftl.run import cpu

    model_dir = run_dir / "model"
    export_onnx(model_dir, work / "onnx", "text-classification")
    quantize_dynamic_int8(work / "onnx")
    report = ov.export_openvino(model_dir, work / "openvino", "text-classification", features, labels,
                                calibration=calibration, num_threads=threads, max_int8_accuracy_drop=1.0)  # fmt: skip
    out: dict[str, Any] = {}
    for precision in ("no", "bf16") if cpu.native_bf16() else ("no",):
        model = TorchClassifier(model_dir, precision=precision)
        out[f"PyTorch {'fp32' if precision == 'no' else 'bf16'}"] = model.logits
    for name, file in (("ORT fp32", FP32_FILE), ("ORT int8", INT8_FILE)):
        session = make_session(work / "onnx" / file, num_threads=threads)
        out[name] = lambda f, s=session: run_logits(s, session_feed(s, f))
    hints = [("OpenVINO fp32", ov.FP32_XML, "f32"), ("OpenVINO int8", ov.INT8_XML, "f32")]
    if cpu.native_bf16():
        hints.insert(1, ("OpenVINO bf16", ov.FP32_XML, "bf16"))
    for name, xml, hint in hints:
        compiled = ov.compile_model(work / "openvino" / xml, precision=hint, num_threads=threads)
        request = compiled.create_infer_request()
        output = compiled.outputs[0]
        out[name] = lambda f, c=compiled, r=request, o=output: r.infer(ov.feed_for(c, f))[o]
    out.update(cuda_backends(model_dir, work / "onnx" / FP32_FILE))
    facts = {"ort_int8_kernels": int8_kernel_isa(), "openvino_int8_kernels": report["int8_kernels"],
             "openvino_fp32_kernels": report["fp32_kernels"]}  # fmt: skip
    return out, facts


def main(argv: list[str]) -> None:
    import inference

    from hftl.deploy.export import CALIBRATION_ROWS, _split_inputs
    from hftl.deploy.latency import _rows, time_block_samples

    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=None, help="a finished MiniLM run (default: runs/demo, else a short run)")
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--test-rows", type=int, default=None)
    args = harness.setup(p, argv)
    if args.quick:
        args.repeats, args.test_rows = 4, 32
    run_dir = args.run
    if run_dir is None:
        demo = harness.REPO / "runs" / "demo"
        run_dir = demo if (demo / "results.json").is_file() and not args.quick else inference.ensure_run(
            "text", harness.recipe_configs(args)["text"], args.out, args.quick)  # fmt: skip
    cfg, features, labels, modality = inference.test_inputs(run_dir, args.test_rows)
    processor = modality.load_processor(str(run_dir / "model"), cfg)
    calibration = _split_inputs(cfg, processor, "train", 32 if args.quick else CALIBRATION_ROWS)[0]
    n = len(labels)
    with tempfile.TemporaryDirectory(prefix="hftl-ladder-") as tmp:
        runners, facts = backends(run_dir, Path(tmp), features, labels, calibration, args.threads)
        accuracy = {}
        for name, call in runners.items():
            logits = np.concatenate([np.asarray(call(_rows_slice(features, i, 32))) for i in range(0, n, 32)])
            accuracy[name] = float((logits.argmax(-1) == labels).mean())
            harness.log(f"  {name}: test accuracy {accuracy[name]:.4f}")
        from hftl.deploy.torch_backend import TorchClassifier

        reference = TorchClassifier(run_dir / "model").model
        latency, samples, flops = {}, {}, {}
        for size in (1, 32):
            batch = _rows(features, size)
            with torch.inference_mode():
                flops[size] = harness.count_flops(
                    reference, {k: torch.as_tensor(v) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")},
                    backward=False,
                )  # fmt: skip
            samples[size] = time_block_samples({name: (lambda c=call, b=batch: c(b)) for name, call in runners.items()},
                                               repeats=args.repeats, rounds=3)  # fmt: skip
            latency[size] = {name: float(np.median(ms)) for name, ms in samples[size].items()}
    t = args.threads
    tokens = features["input_ids"].shape[1]
    print(harness.cpu_line(t) + "\n")
    print(f"MiniLM run {run_dir}, {n} test rows at {tokens} tokens, {t} threads, median ms per call over {args.repeats} "
          f"calls in shuffled blocks (IQR: their interquartile range); {flops[1] / 1e9:.2f} GFLOP per sequence (torch's count). int8 kernels: ORT "
          f"{facts['ort_int8_kernels']}; OpenVINO {facts['openvino_int8_kernels']}.\n")  # fmt: skip
    base = latency[1]["PyTorch fp32"], latency[32]["PyTorch fp32"]
    rows = [
        [name, f"{accuracy[name]:.4f}", latency[1][name], iqr(samples[1][name]), f"{base[0] / latency[1][name]:.2f}x",
         _share(flops[1], latency[1][name], name, t), latency[32][name],
         iqr(samples[32][name]), f"{base[1] / latency[32][name]:.2f}x",
         _share(flops[32], latency[32][name], name, t)]
        for name in runners
    ]  # fmt: skip
    print(harness.markdown_table(["backend", "test acc", "b1 ms", "b1 IQR ms", "b1 speed-up", "b1 % of peak", "b32 ms",
                                  "b32 IQR ms", "b32 speed-up", "b32 % of peak"], rows))  # fmt: skip
    harness.write_results(args.out, "ladder", {"quick": args.quick, "run": str(run_dir), "accuracy": accuracy,
                                               "latency_ms": latency, "latency_samples_ms": samples, "flops": flops,
                                               **facts})  # fmt: skip


def _share(flops: float, ms: float, name: str, threads: int) -> str:
    """The CPU rows' share of the CPU's peak; GPU rows get none (hftl/run/cpu.py knows CPU peaks only)."""
    return harness.peak_share(flops / (ms / 1e3), DTYPE[name], threads) if name in DTYPE else "-"


def iqr(ms: list[float]) -> str:
    """The interquartile range of the timed calls, "q1-q3" (half the calls took between)."""
    q1, q3 = np.percentile(ms, [25, 75])
    return f"{q1:.2f}-{q3:.2f}"


def _rows_slice(features: dict[str, np.ndarray], start: int, size: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[start : start + size] for k, v in features.items()}


if __name__ == "__main__":
    main(sys.argv[1:])
