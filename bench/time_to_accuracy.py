"""Time to accuracy: hftl's LoRA recipe defaults vs the plain transformers Trainer + PEFT script a user would write.

    python bench/time_to_accuracy.py [--modalities text,vision,audio] [--precision auto] [--quick]

Same data, same splits, same preprocessing and the same number of epochs. The peer is Trainer + PEFT with their
defaults (fp32, LoraConfig(task_type=SEQ_CLS) -> r=8 on the architecture's default targets, batch 8, lr 5e-5, AdamW,
linear schedule, no evaluation during training); hftl runs its recipe as ``hftl train`` does, with
training.mixed_precision from ``--precision`` (auto: what this CPU supports). Reported: training time (the loop
only), samples/s, test accuracy of each, the speed-up, and the training rate as a share of the CPU's peak.
One seed each: the seed spread needs repeated runs (``--seeds``) on an idle machine.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch


def run_hftl(config: str, precision: str, seed: int, extra: list[str], out: Path) -> dict[str, Any]:
    from hftl.recipe import run

    cfg = harness.load(config, f"training.mixed_precision={precision}", f"training.seed={seed}", f"output.dir={out}",
                       "output.overwrite=true", "output.save_merged=false", *extra)  # fmt: skip
    results = run(cfg)
    return {"train_s": results["train"]["runtime_s"], "samples_per_second": results["train"]["samples_per_second"],
            "test_accuracy": results["test"]["accuracy"], "precision": results["run"]["mixed_precision"]}  # fmt: skip


def run_peer(config: str, seed: int, extra: list[str], out: Path) -> dict[str, Any]:
    """The plain script: hftl only loads the same splits and preprocessing; training is Trainer + PEFT defaults."""
    from peft import LoraConfig, TaskType, get_peft_model
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    from transformers import Trainer, TrainingArguments

    from hftl.modalities import get_modality
    from hftl.run.data import load_splits
    from hftl.run.methods import lora_targets
    from hftl.run.models import build_model, load_processor

    cfg = harness.load(config, f"training.seed={seed}", *extra)
    torch.manual_seed(seed)
    modality = get_modality(cfg.modality)
    splits, labels = load_splits(cfg.data)
    built = build_model(cfg, modality, labels)
    processor = load_processor(cfg, modality, built)
    # PEFT's defaults, except what a user must add for the script to run and train the head: target modules where
    # PEFT has no default for the architecture (DINOv2), and the new head modules (Whisper's projector + classifier).
    peft_defaults = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(built.model.config.model_type)
    targets = None if peft_defaults else lora_targets(cfg, modality, built.model)
    # PEFT's SEQ_CLS wrapper feeds input_ids: right for text only; vision and audio use the plain PeftModel.
    task_type = TaskType.SEQ_CLS if cfg.modality == "text" else None
    lora = LoraConfig(task_type=task_type, target_modules=targets, modules_to_save=built.head_modules)
    model = get_peft_model(built.model, lora)
    train = modality.prepare(splits["train"], processor, cfg, train=False)
    test = modality.prepare(splits["test"], processor, cfg, train=False)
    args = TrainingArguments(output_dir=str(out), num_train_epochs=cfg.training.epochs, seed=seed, report_to=[],
                             save_strategy="no", use_cpu=True, remove_unused_columns=False, disable_tqdm=True)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=modality.collator(processor, cfg))
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its metrics; stdout is for the table
        output = trainer.train()
    seconds = time.perf_counter() - start
    accuracy = harness.accuracy(model, test, modality.collator(processor, cfg), limit=len(test))
    return {"train_s": seconds, "samples_per_second": output.metrics["train_samples_per_second"],
            "test_accuracy": accuracy, "precision": "no"}  # fmt: skip


def main(argv: list[str]) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--precision", default="auto", help="hftl's training.mixed_precision (default: auto)")
    p.add_argument("--seeds", default="42", help="comma-separated seeds, each run by both")
    args = harness.setup(p, argv)
    extra = ["data.max_train_samples=48", "data.max_eval_samples=32", "training.epochs=1"] if args.quick else []
    seeds = [int(s) for s in args.seeds.split(",")]
    times: dict[str, float] = {}
    results = []
    for modality, config in harness.recipe_configs(args).items():
        with harness.section(f"time_to_accuracy {modality}", times), tempfile.TemporaryDirectory() as tmp:
            for seed in seeds:
                hftl = run_hftl(config, args.precision, seed, extra, Path(tmp) / "hftl")
                peer = run_peer(config, seed, extra, Path(tmp) / "peer")
                harness.log(f"  {modality} seed {seed}: hftl {hftl}  peer {peer}")
                results.append({"modality": modality, "seed": seed, "hftl": hftl, "peer": peer})
    print(harness.cpu_line(args.threads) + "\n")
    print(f"LoRA recipes{' (quick: 48 train rows, 1 epoch)' if args.quick else ''}; training loop time, test accuracy. "
          "Peer: transformers Trainer + PEFT defaults, fp32.\n")  # fmt: skip
    rows = [
        [r["modality"], r["seed"], f"{r['hftl']['precision']}", r["hftl"]["train_s"], r["peer"]["train_s"],
         f"{r['peer']['train_s'] / r['hftl']['train_s']:.2f}x", r["hftl"]["samples_per_second"],
         r["peer"]["samples_per_second"], f"{r['hftl']['test_accuracy']:.4f}", f"{r['peer']['test_accuracy']:.4f}"]
        for r in results
    ]  # fmt: skip
    print(harness.markdown_table(["modality", "seed", "hftl precision", "hftl train s", "peer train s",
                                  "hftl speed-up", "hftl samples/s", "peer samples/s", "hftl test acc",
                                  "peer test acc"], rows))  # fmt: skip
    if len(seeds) > 1:
        print("\nOver the seeds: median (min-max) of the times and the speed-up, mean +- sd of the test accuracies.\n")
        print(spread_table(results))
    spread = {m: np.std([r["hftl"]["test_accuracy"] for r in results if r["modality"] == m]) for m in {r["modality"] for r in results}}
    harness.write_results(args.out, "time_to_accuracy", {"quick": args.quick, "section_seconds": times,
                                                        "results": results, "hftl_seed_std": spread})  # fmt: skip


def spread_table(results: list[dict[str, Any]]) -> str:
    """One row per modality: the runs' spread over seeds (the per-seed table above has one number per run)."""

    def median_range(values: list[float], unit: str = "") -> str:
        return f"{np.median(values):.2f}{unit} ({min(values):.2f}-{max(values):.2f})"

    def mean_sd(values: list[float]) -> str:
        return f"{np.mean(values):.4f} +- {np.std(values, ddof=1) if len(values) > 1 else 0.0:.4f}"

    rows = []
    for modality in dict.fromkeys(r["modality"] for r in results):
        runs = [r for r in results if r["modality"] == modality]
        hftl_s, peer_s = [r["hftl"]["train_s"] for r in runs], [r["peer"]["train_s"] for r in runs]
        rows.append([modality, len(runs), median_range(hftl_s), median_range(peer_s),
                     median_range([p / h for p, h in zip(peer_s, hftl_s, strict=True)], "x"),
                     mean_sd([r["hftl"]["test_accuracy"] for r in runs]), mean_sd([r["peer"]["test_accuracy"] for r in runs])])  # fmt: skip
    return harness.markdown_table(["modality", "seeds", "hftl train s median (min-max)", "peer train s median (min-max)",
                                   "hftl speed-up median (min-max)", "hftl test acc mean +- sd",
                                   "peer test acc mean +- sd"], rows)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
