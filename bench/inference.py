"""Inference: PyTorch eager vs ONNX Runtime fp32, fused fp32 and int8 variants, batch 1 and 32, with test accuracy.

    python bench/inference.py [--run MODALITY=RUN_DIR ...] [--repeats 60] [--test-rows N] [--all-variants] [--quick]

Per modality, a fine-tuned run (``--run``; else a short LoRA run of the recipe is trained once into
``runs/bench/models/MODALITY`` and reused) is exported with optimum, then every variant below is scored on the
run's test split (accuracy, and the largest logit difference from PyTorch) and timed at batch 1 and 32 with the
same thread count for every backend, in shuffled blocks (``hftl.deploy.latency.time_blocks``):

    torch               PyTorch eager, fp32
    ort fp32            the exported graph (onnxruntime applies its own graph optimisations when it loads it)
    ort fp32 fused      onnxruntime.transformers' optimizer first: attention / LayerNorm / GELU fusions (BERT, ViT)
    int8 per-tensor     dynamic int8, optimum's default operators, one scale per tensor (hftl's export until now)
    int8 fused          fused graph, then dynamic int8, per-channel, onnxruntime's default operators
    int8 hftl           what ``hftl export`` writes: per-channel, weight MatMuls only (hftl.deploy.onnx.INT8_OPERATORS)

``--all-variants`` adds per-channel with every default operator, weight and activation MatMuls, the embedding table
quantized too (``Gather``: a 4x smaller file), and reduce_range.
ORT sessions keep thread spinning on (onnxruntime's default, what ``hftl export``'s report and ``hftl predict`` use);
the ``, no spinning`` row is the int8 model with it off, to show what it is worth.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import harness
import numpy as np

from hftl.deploy.latency import time_blocks
from hftl.deploy.runtime import make_session, run_logits, session_feed

# onnxruntime.transformers' optimizer knows these architectures; Whisper's encoder is not among them.
FUSION_MODEL_TYPES = {"bert": "bert", "roberta": "bert", "distilbert": "bert", "vit": "vit", "dinov2": "vit"}
NO_SPIN = "int8 hftl, no spinning"
# A short fine-tune when no run is given: enough for the accuracy comparison between backends.
SHORT_RUN = {
    "text": ["training.epochs=1"],
    "vision": ["data.max_train_samples=1000", "training.epochs=1"],
    "audio": ["training.epochs=1"],
}


def ensure_run(modality: str, config: str, out: Path, quick: bool) -> Path:
    """A finished run of ``config``: reused when ``out/models/MODALITY`` has one, else trained there now."""
    from hftl.recipe import run

    run_dir = out / ("models-quick" if quick else "models") / modality  # a smoke run's model is never reused for real
    if (run_dir / "results.json").is_file():
        return run_dir
    extra = ["training.max_steps=2", "data.max_train_samples=64", "data.max_eval_samples=32"] if quick else SHORT_RUN[modality]
    harness.log(f"  training {config} {' '.join(extra)} into {run_dir} (once; reused afterwards)")
    run(harness.load(config, *extra, f"output.dir={run_dir}", "output.overwrite=true", "export.enabled=false"))
    return run_dir


def test_inputs(run_dir: Path, rows: int | None) -> tuple[Any, dict[str, np.ndarray], np.ndarray, Any]:
    """(cfg, features, labels, modality) for the run's test split, stratified down to ``rows``."""
    from hftl.config import load_config
    from hftl.modalities import get_modality
    from hftl.run.data import load_splits, stratified_sample

    cfg = load_config(run_dir / "config.yaml")
    modality = get_modality(cfg.modality)
    processor = modality.load_processor(str(run_dir / "model"), cfg)
    test = load_splits(cfg.data)[0]["test"]
    labels = np.asarray(test[cfg.data.label_column])
    if rows is not None and len(test) > rows:
        test = test.select(stratified_sample(labels, rows, cfg.data.split_seed))
        labels = np.asarray(test[cfg.data.label_column])
    return cfg, modality.encode(processor, cfg, list(test[cfg.data.input_column])), labels, modality


def fuse(src: Path, dst: Path, model_type: str) -> dict[str, int]:
    """onnxruntime.transformers' fusions (CPU); returns how many of each fused operator it made."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(src), model_type=FUSION_MODEL_TYPES[model_type], num_heads=0, hidden_size=0)
    dst.parent.mkdir(parents=True, exist_ok=True)
    optimized.save_model_to_file(str(dst))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def quantize_ort(src: Path, dst: Path, **options: Any) -> Path:
    """onnxruntime's quantize_dynamic (optimum's quantizer cannot type the fused graph's contrib-op outputs)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT, **options.pop("extra_options", {})}
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, extra_options=extra, **options)
    return dst


def quantize_hftl(src: Path, folder: Path, **options: Any) -> Path:
    """hftl.deploy.onnx.quantize_dynamic_int8 (the export's own code path) on a copy-free link to ``src``."""
    from hftl.deploy.onnx import quantize_dynamic_int8

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src.parent / "config.json", folder / "config.json")  # optimum warns without it
    link = folder / "model.onnx"
    link.unlink(missing_ok=True)
    link.symlink_to(src.resolve())
    path, _ = quantize_dynamic_int8(folder, **options)
    return path


def build_variants(onnx_dir: Path, model_type: str, all_variants: bool) -> tuple[dict[str, Path], dict[str, Any]]:
    """Variant name -> ONNX file, and notes (fusion counts, or why there is no fused graph)."""
    fp32 = onnx_dir / "model.onnx"
    files = {"ort fp32": fp32}
    notes: dict[str, Any] = {}
    fused = None
    if model_type in FUSION_MODEL_TYPES:
        fused = onnx_dir / "fused" / "model.onnx"
        notes["fusions"] = fuse(fp32, fused, model_type)
        files["ort fp32 fused"] = fused
    else:
        notes["fusions"] = f"onnxruntime.transformers has no fusion for model_type {model_type!r}"
    files["int8 per-tensor"] = quantize_hftl(
        fp32, onnx_dir / "per_tensor", operators=None, per_channel=False, weights_only=False
    )
    if fused is not None:
        files["int8 fused"] = quantize_ort(fused, onnx_dir / "fused" / "int8.onnx", per_channel=True)
    files["int8 hftl"] = quantize_hftl(fp32, onnx_dir / "hftl")
    if all_variants:
        files["int8 per-channel, all ops"] = quantize_hftl(fp32, onnx_dir / "all_ops", operators=None, weights_only=False)
        files["int8 per-channel, all MatMuls"] = quantize_hftl(fp32, onnx_dir / "all_matmuls", weights_only=False)
        files["int8 hftl + embeddings"] = quantize_hftl(fp32, onnx_dir / "gather", operators=["MatMul", "Gather"])
        files["int8 hftl, reduce_range"] = quantize_ort(
            fp32, onnx_dir / "reduce_range.onnx", per_channel=True, reduce_range=True, op_types_to_quantize=["MatMul"]
        )
    return files, notes


def _rows(features: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    count = len(next(iter(features.values())))
    return {k: np.take(v, np.arange(n) % count, axis=0) for k, v in features.items()}


def bench_modality(modality_name: str, run_dir: Path, args) -> dict[str, Any]:
    import torch

    from hftl.deploy.onnx import export_onnx
    from hftl.deploy.parity import load_torch_model

    cfg, features, labels, modality = test_inputs(run_dir, args.test_rows)
    onnx_dir = args.out / "onnx" / modality_name
    shutil.rmtree(onnx_dir, ignore_errors=True)
    export_onnx(run_dir / "model", onnx_dir, modality.onnx_task)
    model = load_torch_model(run_dir / "model", auto_class=modality.auto_model_name)
    model_type = model.config.model_type
    files, notes = build_variants(onnx_dir, model_type, args.all_variants)
    sessions = {name: make_session(path, num_threads=args.threads, allow_spinning=True) for name, path in files.items()}
    sessions[NO_SPIN] = make_session(files["int8 hftl"], num_threads=args.threads, allow_spinning=False)
    sizes = {name: round(path.stat().st_size / 2**20, 1) for name, path in files.items()}
    sizes[NO_SPIN] = sizes["int8 hftl"]

    reference = sessions["ort fp32"]
    logits = {}
    with torch.inference_mode():
        chunks = []
        for i in range(0, len(labels), 32):
            feed = session_feed(reference, features, slice(i, i + 32))
            chunks.append(model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.float().numpy())
        logits["torch"] = np.concatenate(chunks)
    for name, sess in sessions.items():
        if name != NO_SPIN:  # same model and numbers as "int8 hftl"
            logits[name] = run_logits(sess, features, batch_size=32)
    logits[NO_SPIN] = logits["int8 hftl"]

    latency: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        # Many short blocks in shuffled order: a burst of noise from the host then lands on every backend alike.
        for bs, repeats in ((1, args.repeats), (32, max(3, args.repeats // 6))):
            feed = session_feed(reference, _rows(features, bs))
            torch_feed = {k: torch.from_numpy(v) for k, v in feed.items()}
            runners = {"torch": lambda tf=torch_feed: model(**tf)}
            runners.update({name: (lambda s=s, f=feed: s.run(None, f)) for name, s in sessions.items()})
            warmup = 2 if bs == 1 else 1
            latency[f"batch_{bs}"] = time_blocks(runners, repeats=repeats, warmup=warmup, rounds=5, seed=0)
            harness.log(f"  {modality_name} batch {bs}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in latency[f"batch_{bs}"].items()))

    torch_acc = float((logits["torch"].argmax(-1) == labels).mean())
    rows = []
    for name, lg in logits.items():
        acc = float((lg.argmax(-1) == labels).mean())
        rows.append({
            "backend": name,
            "accuracy": acc,
            "accuracy_change_points": 100 * (acc - torch_acc),
            "max_abs_logit_diff": float(np.abs(lg - logits["torch"]).max()),
            "latency_ms": {b: ms[name] for b, ms in latency.items()},
            "speedup_vs_torch": {b: ms["torch"] / ms[name] for b, ms in latency.items()},
            "size_mb": sizes.get(name),
        })  # fmt: skip
    return {
        "modality": modality_name,
        "run": str(run_dir),
        "model_type": model_type,
        "test_rows": len(labels),
        "threads": args.threads,
        "notes": notes,
        "rows": rows,
    }


def main(argv: list[str]) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--run", action="append", default=[], metavar="MODALITY=RUN_DIR", help="a finished run to use")
    p.add_argument("--repeats", type=int, default=60, help="timed calls per backend at batch 1 (a sixth at batch 32)")
    p.add_argument("--test-rows", type=int, default=None, help="stratified cap on test rows (default: the whole split)")
    p.add_argument("--all-variants", action="store_true", help="also the other int8 settings tried")
    args = harness.setup(p, argv)
    if args.quick:
        args.repeats, args.test_rows = 3, args.test_rows or 16
    runs = {}
    for item in args.run:
        modality, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--run wants MODALITY=RUN_DIR, got {item!r}")
        runs[modality] = Path(path)
    times: dict[str, float] = {}
    results = []
    for modality, config in harness.recipe_configs(args).items():
        with harness.section(f"inference {modality}", times):
            run_dir = runs.get(modality) or ensure_run(modality, config, args.out, args.quick)
            results.append(bench_modality(modality, run_dir, args))
    table = []
    for r in results:
        for row in r["rows"]:
            table.append([
                r["modality"], row["backend"], f"{row['accuracy']:.4f}", f"{row['accuracy_change_points']:+.2f}",
                f"{row['max_abs_logit_diff']:.1e}",
                row["latency_ms"]["batch_1"], f"{row['speedup_vs_torch']['batch_1']:.2f}x",
                row["latency_ms"]["batch_32"], f"{row['speedup_vs_torch']['batch_32']:.2f}x", row["size_mb"],
            ])  # fmt: skip
    splits = ", ".join(f"{r['modality']}: {r['test_rows']} rows of {r['run']}" for r in results)
    print(f"{args.threads} threads for every backend; median ms per call; accuracy on the test split ({splits})\n")
    print(harness.markdown_table(
        ["modality", "backend", "test acc", "vs torch (points)", "max logit diff", "batch 1 ms", "speedup",
         "batch 32 ms", "speedup", "MB"],
        table,
    ))  # fmt: skip
    for r in results:
        print(f"\n{r['modality']} ({r['model_type']}) fusions: {r['notes']['fusions']}")
    harness.write_results(args.out, "inference", {"quick": args.quick, "section_seconds": times, "results": results})


if __name__ == "__main__":
    main(sys.argv[1:])
