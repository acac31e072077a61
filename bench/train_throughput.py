"""Training throughput: hftl's accelerate loop vs transformers' Trainer, same model, data, batch, steps, threads.

    python bench/train_throughput.py [--steps 30] [--rounds 3] [key=value ...]   (defaults: MiniLM LoRA on BBC News)

Both sides get the identical model (built by hftl from the recipe config) and the identical pre-tokenised train split.
Runs alternate (hftl, Trainer, hftl, ...) with the order flipped every round; each run's samples/s counts only its
training steps after a 3-step warm-up. Prints a markdown table with the medians and the ratio hftl/Trainer.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from hftl.config import load_config
from hftl.data import load_splits
from hftl.modalities import get_modality
from hftl.models import apply_method, build_model

WARMUP = 3


def build(cfg):
    modality = get_modality(cfg.modality)
    splits, labels = load_splits(cfg.data)
    built = build_model(cfg, modality, labels)
    processor = modality.load_processor(built.source, cfg)
    model = apply_method(cfg, modality, built)
    train = modality.prepare(splits["train"], processor, cfg, train=True)
    return model, train, modality.collator(processor, cfg)


class _StepTimer:
    """Wall time of optimizer steps after the warm-up, whichever loop calls it."""

    def __init__(self):
        self.times: list[float] = []

    def tick(self):
        self.times.append(time.perf_counter())

    def samples_per_second(self, batch_size: int) -> float:
        t = self.times[WARMUP:]
        return batch_size * (len(t) - 1) / (t[-1] - t[0])


def run_hftl(cfg, steps: int) -> float:
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from hftl.training import Trainer

    model, train, collate = build(cfg)
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as out:
        accelerator = Accelerator(cpu=True)
        loader = DataLoader(train, batch_size=cfg.training.batch_size, shuffle=True, collate_fn=collate)
        trainer = Trainer(cfg, accelerator, model, loader, loader, Path(out))
        trainer.scheduler.step = _wrap(trainer.scheduler.step, timer)  # called once per optimizer step
        trainer.total_steps = steps
        trainer._evaluate_and_checkpoint = lambda: True  # time training only: stop at the first evaluation
        trainer.fit()
    return timer.samples_per_second(cfg.training.batch_size)


def run_trainer(cfg, steps: int) -> float:
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    model, train, collate = build(cfg)
    timer = _StepTimer()

    class Tick(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            timer.tick()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=cfg.training.batch_size,
            learning_rate=cfg.training.learning_rate, weight_decay=cfg.training.weight_decay,
            warmup_ratio=cfg.training.warmup_ratio, max_grad_norm=cfg.training.max_grad_norm or 0.0,
            lr_scheduler_type=cfg.training.lr_scheduler, logging_steps=10_000, save_strategy="no", eval_strategy="no",
            report_to=[], use_cpu=True, dataloader_num_workers=0, seed=cfg.training.seed, disable_tqdm=True,
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate, callbacks=[Tick()])
        trainer.remove_callback(PrinterCallback)  # keeps the table on stdout clean
        trainer.train()
    return timer.samples_per_second(cfg.training.batch_size)


def _wrap(step, timer):
    def stepped(*a, **k):
        timer.tick()
        return step(*a, **k)

    return stepped


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="recipes/configs/text/minilm_lora.yaml")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config, ["training.tracking=none", *args.overrides])
    results: dict[str, list[float]] = {"hftl": [], "Trainer": []}
    runners = {"hftl": run_hftl, "Trainer": run_trainer}
    for r in range(args.rounds):
        order = ["hftl", "Trainer"] if r % 2 == 0 else ["Trainer", "hftl"]
        for name in order:
            results[name].append(runners[name](cfg, args.steps))
            print(f"round {r + 1}: {name} {results[name][-1]:.2f} samples/s", file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\n{args.config} {' '.join(args.overrides)}: {args.steps} steps x batch {cfg.training.batch_size}, "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds")  # fmt: skip
    print("| loop | median samples/s | runs |\n|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {med[name]:.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print(f"\nratio hftl / Trainer: {med['hftl'] / med['Trainer']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
