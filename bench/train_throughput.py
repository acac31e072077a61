"""Training throughput: hftl's loop vs transformers' Trainer on the same model, data, batch, steps and threads.

    python bench/train_throughput.py [--samples 512] [--rounds 5] [--modalities text,vision,audio] [--quick]

Per modality (the LoRA recipes by default: MiniLM on BBC News, DINOv2 on Fashion-MNIST, Whisper on the speech set)
both loops get identical weights (a seeded build), the identical batches in the identical order (one fixed
permutation), the same dropout masks (torch's RNG is reseeded before every training forward) and the same optimizer,
schedule and clipping. So they do the same computation, and the table shows it: the largest difference between
their per-step losses and their validation accuracy after the steps. Every run trains on ``--samples`` samples
(the same number of steps for both loops); runs alternate (hftl, Trainer, then Trainer, hftl, ...) after one untimed
forward + backward; samples/s counts the steps after the first three; medians and the ratio hftl / Trainer are reported.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

import harness
import torch


class SameComputation:
    """Reseed torch's RNG before each training forward (same dropout masks in both loops) and record the losses."""

    def __init__(self, model: torch.nn.Module, seed: int):
        self.seed, self.calls, self.losses = seed, 0, []
        model.register_forward_pre_hook(self._before)
        model.register_forward_hook(self._after)

    def _before(self, module, args):
        if module.training:
            torch.manual_seed(self.seed * 100_003 + self.calls)
            self.calls += 1

    def _after(self, module, args, output):
        if module.training and getattr(output, "loss", None) is not None:
            self.losses.append(float(output.loss.detach()))


def run_hftl(built: harness.Built, steps: int, sampler) -> harness.StepClock:
    return harness.hftl_loop(built, steps, sampler=sampler)


def run_trainer(built: harness.Built, steps: int, sampler) -> harness.StepClock:
    import tempfile

    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    tc = built.cfg.training
    clock = harness.StepClock()

    class Tick(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.tick()

    class FixedOrderTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return sampler

    with tempfile.TemporaryDirectory(prefix="hftl-bench-") as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=tc.batch_size,
            learning_rate=tc.learning_rate, weight_decay=tc.weight_decay,
            # hftl rounds warmup_ratio * steps, Trainer rounds up: give Trainer the same count
            warmup_steps=round(tc.warmup_ratio * steps), warmup_ratio=0.0,
            max_grad_norm=tc.max_grad_norm or 0.0, lr_scheduler_type=tc.lr_scheduler,
            logging_steps=10, save_strategy="no", eval_strategy="no", report_to=[], use_cpu=True,
            dataloader_num_workers=tc.num_workers, seed=tc.seed, disable_tqdm=True,
            remove_unused_columns=False,  # the vision / audio splits are lazy transforms of raw columns
        )  # fmt: skip
        trainer = FixedOrderTrainer(
            model=built.model, args=args, train_dataset=built.train, data_collator=built.collate, callbacks=[Tick()]
        )
        trainer.remove_callback(PrinterCallback)  # keeps the table on stdout clean
        trainer.train()
    return clock


LOOPS = {"hftl": run_hftl, "Trainer": run_trainer}


def warm_up_process(cfg) -> None:
    """One untimed forward + backward, so the first timed run does not pay the process's one-off costs alone.

    (Each loop's own start-up costs fall in the first steps of every run, which are not timed.)
    """
    from torch.utils.data import DataLoader

    built = harness.build(cfg)
    batch = next(iter(DataLoader(built.train, batch_size=cfg.training.batch_size, collate_fn=built.collate)))
    built.model.train()
    built.model(**batch).loss.backward()


def bench_modality(config: str, steps: int, rounds: int, eval_limit: int) -> dict[str, Any]:
    cfg = harness.load(config)
    speeds: dict[str, list[float]] = {name: [] for name in LOOPS}
    losses: dict[str, list[float]] = {}
    val_accuracy: dict[str, float] = {}
    warm_up_process(cfg)
    schedule = []
    for r in range(rounds):  # alternating: hftl, Trainer, Trainer, hftl, ...
        schedule += list(LOOPS) if r % 2 == 0 else list(reversed(LOOPS))
    for name in schedule:
        built = harness.build(cfg)
        same = SameComputation(built.model, cfg.training.seed)
        sampler = harness.FixedOrder(len(built.train), cfg.training.seed)
        clock = LOOPS[name](built, steps, sampler)
        speeds[name].append(clock.samples_per_second(cfg.training.batch_size))
        harness.log(f"  {cfg.modality} {name}: {speeds[name][-1]:.2f} samples/s")
        if name not in losses:  # first timed run of each loop: the same-computation check
            losses[name] = same.losses
            val_accuracy[name] = harness.accuracy(built.model, built.validation, built.collate, limit=eval_limit)
    loss_diff = max(abs(a - b) for a, b in zip(losses["hftl"], losses["Trainer"], strict=True))
    median = {name: statistics.median(v) for name, v in speeds.items()}
    # Each round runs both loops back to back, so a round's ratio cancels the host's slow drift (runs of one loop
    # spread by 10-20% on a shared machine); the reported ratio is the median of the rounds' ratios.
    per_round = [h / t for h, t in zip(speeds["hftl"], speeds["Trainer"], strict=True)]
    return {
        "modality": cfg.modality,
        "config": config,
        "method": cfg.method.name,
        "steps": steps,
        "batch_size": cfg.training.batch_size,
        "rounds": rounds,
        "samples_per_second": speeds,
        "median": median,
        "ratio": statistics.median(per_round),
        "ratio_per_round": per_round,
        "losses": losses,
        "loss_max_abs_diff": loss_diff,
        "validation_accuracy": val_accuracy,
        "validation_rows": min(eval_limit, len(built.validation)),
    }


def main(argv: list[str]) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    # 256 samples (8 steps of vision's batch 32, 5 timed) read vision at 0.986 in one run, 1.097 in the next at 512 x 5.
    p.add_argument("--samples", type=int, default=512, help="training samples per run: steps = samples / batch size")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--eval-rows", type=int, default=256, help="validation rows for the accuracy check")
    args = harness.setup(p, argv)
    if args.quick:
        args.samples, args.rounds, args.eval_rows = 0, 1, 16
    times: dict[str, float] = {}
    results = []
    for modality, config in harness.recipe_configs(args).items():
        batch = harness.load(config).training.batch_size
        steps = max(harness.WARMUP_STEPS + 3, -(-args.samples // batch))  # at least 3 timed step intervals
        with harness.section(f"train_throughput {modality}", times):
            results.append(bench_modality(config, steps, args.rounds, args.eval_rows))
    rows = [
        [
            r["modality"], f"{r['method']}, {r['steps']} steps x {r['batch_size']}",
            r["median"]["hftl"], r["median"]["Trainer"], f"{r['ratio']:.3f}",
            ", ".join(f"{v:.3f}" for v in r["ratio_per_round"]),
            f"{r['loss_max_abs_diff']:.1e}",
            f"{r['validation_accuracy']['hftl']:.4f} / {r['validation_accuracy']['Trainer']:.4f}",
            ", ".join(f"{v:.2f}" for v in r["samples_per_second"]["hftl"]),
            ", ".join(f"{v:.2f}" for v in r["samples_per_second"]["Trainer"]),
        ]
        for r in results
    ]  # fmt: skip
    print(f"{torch.get_num_threads()} torch threads, {args.rounds} interleaved rounds, median samples/s; "
          "hftl / Trainer is the median of the rounds' ratios (each round runs both loops back to back)\n")  # fmt: skip
    print(harness.markdown_table(
        ["modality", "run", "hftl", "Trainer", "hftl / Trainer", "ratio per round", "max loss diff",
         "val acc hftl / Trainer",
         "hftl runs", "Trainer runs"],
        rows,
    ))  # fmt: skip
    harness.write_results(args.out, "train_throughput", {"quick": args.quick, "section_seconds": times, "results": results})


if __name__ == "__main__":
    main(sys.argv[1:])
