"""What else buys training time on this CPU: padding and length-grouped batches, SDPA vs eager attention, torch.compile.

    python bench/speed_trials.py [--trials padding,attention,compile] [--steps 24] [--rounds 2] [--precision auto] [--quick]

Each trial times hftl's training loop (the recipe's accelerator, optimizer and precision: training.mixed_precision
auto) over ``--steps`` optimizer steps after the harness's warm-up, variants alternating within every round (the
order flips each round; ``--precision`` sets training.mixed_precision, e.g. ``no`` for fp32), median samples/s and
the median of the rounds' ratios to the first variant:

- padding (MiniLM LoRA): fixed padding to text.max_length, dynamic padding to the batch's longest row (pad to a
  multiple of 8, what hftl's collator does), dynamic padding with length-grouped batches (transformers'
  LengthGroupedSampler, what Trainer's group_by_length uses), on BBC News (the recipe) and on the short fortunes
  texts; the padded tokens per row of each scheme are counted over the timed batches.
- attention (MiniLM LoRA, DINOv2 LoRA): PyTorch SDPA, what transformers 4.57 loads by default, vs the eager
  matmul-softmax-matmul; the max logit difference on one batch shows they compute the same function.
- compile (MiniLM LoRA): torch.compile(model) (inductor) vs eager: the first step's extra time (compilation) and the
  steady step rate, hence the steps it takes to pay the compilation back. ``--quick`` captures graphs only.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from typing import Any

import harness
import torch

TEXT = "recipes/configs/text/minilm_lora.yaml"
VISION = "recipes/configs/vision/dinov2_lora.yaml"
SHORT_TEXTS = "zoo:fortunes"  # texts of varied, mostly short length (a text,label data set)


PRECISION = ["training.mixed_precision=auto"]  # main() replaces it with --precision


def _load(config: str, *overrides: str):
    return harness.load(str(harness.repo_path(config)), *PRECISION, *overrides)


def _ordered(indices: list[int]) -> harness.FixedOrder:
    sampler = harness.FixedOrder(len(indices), 0)
    sampler.order = list(indices)
    return sampler


def _batches_shuffled(order: list[int], batch: int, seed: int) -> list[int]:
    """``order`` with its batches (not rows) shuffled: any first few batches are then a fair sample of the epoch's."""
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    picks = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed)).tolist()
    return [i for p in picks for i in batches[p]]


def _padded_tokens(lengths: list[int], order: list[int], batch: int, steps: int | None, fixed: int | None) -> float:
    """Tokens per row the model sees over the first ``steps`` batches of ``order`` (all: ``steps`` None), padding to
    a multiple of 8 (or to ``fixed``)."""
    total = rows = 0
    for start in range(0, len(order) if steps is None else min(len(order), batch * steps), batch):
        chunk = [lengths[i] for i in order[start : start + batch]]
        width = fixed or -(-max(chunk) // 8) * 8
        total, rows = total + width * len(chunk), rows + len(chunk)
    return total / rows


def _alternate(variants: dict[str, Any], rounds: int, run_one) -> dict[str, list[float]]:
    """samples/s per variant, variants alternating within each round (order reversed every other round)."""
    names = list(variants)
    speeds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            speeds[name].append(run_one(name, variants[name]))
            harness.log(f"    {name}: {speeds[name][-1]:.2f} samples/s")
    return speeds


def _rows(trial: str, setting: str, speeds: dict[str, list[float]], notes: dict[str, str]) -> list[list[Any]]:
    base = list(speeds)[0]
    rows = []
    for name, values in speeds.items():
        ratio = statistics.median(v / b for v, b in zip(values, speeds[base], strict=True))
        rows.append([trial, setting, name, statistics.median(values), f"{ratio:.2f}x",
                     ", ".join(f"{v:.2f}" for v in values), notes.get(name, "")])  # fmt: skip
    return rows


def padding_trial(config: str, data: list[str], label: str, steps: int, rounds: int) -> list[list[Any]]:
    from transformers import DataCollatorWithPadding
    from transformers.trainer_pt_utils import LengthGroupedSampler

    cfg = _load(config, *data)
    built = harness.build(cfg)
    batch, max_length = cfg.training.batch_size, cfg.text.max_length
    lengths = [len(built.train[i]["input_ids"]) for i in range(len(built.train))]
    shuffled = harness.FixedOrder(len(lengths), cfg.training.seed).order
    generator = torch.Generator().manual_seed(cfg.training.seed)
    grouped = list(LengthGroupedSampler(batch, lengths=lengths, generator=generator))
    # the timed steps see a random sample of each scheme's batches (LengthGroupedSampler puts the longest batch first)
    shuffled, grouped = (_batches_shuffled(o, batch, cfg.training.seed) for o in (shuffled, grouped))
    fixed = DataCollatorWithPadding(built.processor, padding="max_length", max_length=max_length)
    timed = steps + harness.WARMUP_STEPS
    variants = {
        "fixed max_length": (fixed, shuffled, max_length),
        "dynamic (hftl)": (built.collate, shuffled, None),
        "dynamic + length-grouped": (built.collate, grouped, None),
    }
    notes = {
        n: f"{_padded_tokens(lengths, order, batch, None, width):.1f} tokens/row over the epoch, "
        f"{_padded_tokens(lengths, order, batch, timed, width):.1f} in the timed batches"
        for n, (_, order, width) in variants.items()
    }
    share_full = sum(n >= max_length for n in lengths) / len(lengths)
    harness.log(f"  padding on {label}: {100 * share_full:.1f} % of rows reach max_length={max_length}; {notes}")

    def run_one(name: str, variant) -> float:
        collate, order, _ = variant
        fresh = harness.build(cfg)  # same seed: identical initial weights for every variant
        fresh = dataclasses.replace(fresh, collate=collate)
        return harness.hftl_loop(fresh, timed, sampler=_ordered(order)).samples_per_second(batch)

    setting = f"MiniLM LoRA, {label}, batch {batch}, max_length {max_length} ({100 * share_full:.1f} % of rows reach it)"
    if share_full >= 0.95:  # nearly every batch is max_length wide whatever the scheme: nothing to time
        return [["padding", setting, name, "", "", "not timed: same tokens", notes[name]] for name in variants]
    return _rows("padding", setting, _alternate(variants, rounds, run_one), notes)


def _eager_attention(model: torch.nn.Module) -> None:
    """Switch a loaded model to eager attention. DINOv2 dispatches per call on the config; BERT in transformers 4.57
    picks its attention class when built, so its SDPA modules become the eager parent class (same weights)."""
    from transformers.models.bert.modeling_bert import BertSdpaSelfAttention, BertSelfAttention

    swapped = 0
    for module in model.modules():
        if isinstance(module, BertSdpaSelfAttention):
            module.__class__ = BertSelfAttention
            swapped += 1
    if not swapped:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.set_attn_implementation("eager")


def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    model.train()
    return out


def attention_trial(config: str, label: str, steps: int, rounds: int) -> list[list[Any]]:
    cfg = _load(config)
    batch = cfg.training.batch_size
    timed = steps + harness.WARMUP_STEPS

    def build(name: str) -> harness.Built:
        built = harness.build(cfg)
        if name == "eager":
            _eager_attention(built.model)
        return built

    probe = harness.build(cfg)
    rows = probe.collate([probe.train[i] for i in range(4)])
    reference = _logits(probe.model, rows)
    _eager_attention(probe.model)
    diff = float((_logits(probe.model, rows) - reference).abs().max())
    notes = {"eager": f"max logit diff vs SDPA (fp32) {diff:.1e}"}

    def run_one(name: str, _variant) -> float:
        built = build(name)
        order = harness.FixedOrder(len(built.train), cfg.training.seed)
        return harness.hftl_loop(built, timed, sampler=order).samples_per_second(batch)

    speeds = _alternate({"sdpa (default)": None, "eager": None}, rounds, run_one)
    return _rows("attention", f"{label} LoRA, batch {batch}", speeds, notes)


def compile_trial(config: str, steps: int, rounds: int, backend: str = "inductor") -> list[list[Any]]:
    cfg = _load(config)
    batch = cfg.training.batch_size
    timed = steps + harness.WARMUP_STEPS
    first_step: dict[str, list[float]] = {"eager (default)": [], "torch.compile": []}

    def run_one(name: str, _variant) -> float:
        built = harness.build(cfg)
        if name == "torch.compile":
            torch._dynamo.reset()  # every round compiles from scratch, as a fresh run would
            built = dataclasses.replace(built, model=torch.compile(built.model, backend=backend))
        order = harness.FixedOrder(len(built.train), cfg.training.seed)
        start = time.perf_counter()
        clock = harness.hftl_loop(built, timed, sampler=order)
        first_step[name].append(clock.times[0] - start)
        return clock.samples_per_second(batch)

    speeds = _alternate({"eager (default)": None, "torch.compile": None}, rounds, run_one)
    extra = statistics.median(c - e for c, e in zip(first_step["torch.compile"], first_step["eager (default)"], strict=True))
    eager_step = batch / statistics.median(speeds["eager (default)"])
    compiled_step = batch / statistics.median(speeds["torch.compile"])
    saved = eager_step - compiled_step
    payback = f"pays back after {extra / saved:.0f} steps" if saved > 0 else "never pays back (steps are not faster)"
    notes = {"torch.compile": f"first step +{extra:.1f} s (compilation); {payback}"}
    return _rows("compile", f"MiniLM LoRA, batch {batch}", speeds, notes)


def main(argv: list[str]) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--trials", default="padding,attention,compile", help="comma-separated subset of padding,attention,compile")
    p.add_argument("--steps", type=int, default=24, help="timed optimizer steps per variant and round")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    p.add_argument("--precision", default="auto", help="training.mixed_precision of every trial (no: fp32; default auto)")
    p.add_argument("--short-texts", default=SHORT_TEXTS, help=f"data.source with text,label columns for the padding trial (default {SHORT_TEXTS})")
    args = harness.setup(p, argv)
    PRECISION[:] = [f"training.mixed_precision={args.precision}"]
    trials = [t.strip() for t in args.trials.split(",") if t.strip()]
    unknown = sorted(set(trials) - {"padding", "attention", "compile"})
    if unknown:
        raise SystemExit(f"--trials: unknown {unknown}; choose from padding, attention, compile")
    steps, rounds = (2, 1) if args.quick else (args.steps, args.rounds)
    configs = {**{"text": TEXT, "vision": VISION}, **dict(item.partition("=")[::2] for item in args.config)}
    times: dict[str, float] = {}
    rows: list[list[Any]] = []
    load_before = harness.machine()["load_average_1min"]
    if "padding" in trials:
        with harness.section("padding", times):
            rows += padding_trial(configs["text"], [], "the recipe's data", steps, rounds)
            short = [f"data.source={args.short_texts}", "data.input_column=text", "data.label_column=label"]
            rows += padding_trial(configs["text"], short, f"{args.short_texts} (short texts)", steps, rounds)
    if "attention" in trials:
        with harness.section("attention", times):
            rows += attention_trial(configs["text"], "MiniLM", steps, rounds)
            rows += attention_trial(configs["vision"], "DINOv2", steps, rounds)
    if "compile" in trials:
        with harness.section("compile", times):
            # --quick: dynamo's graph capture without inductor's code generation (minutes on a loaded CPU)
            rows += compile_trial(configs["text"], steps, rounds, "eager" if args.quick else "inductor")
    load_after = harness.machine()["load_average_1min"]
    print(harness.cpu_line(args.threads) + "\n")
    print(f"hftl's loop, training.mixed_precision={args.precision}, {steps} timed steps after {harness.WARMUP_STEPS} warm-up steps, "
          f"{rounds} alternating rounds, {args.threads} threads; load average {load_before} before, {load_after} after. "
          "Ratio: median over rounds of the variant's samples/s over the first variant's of the same round.\n")  # fmt: skip
    print(harness.markdown_table(["trial", "setting", "variant", "samples/s", "vs first", "per round", "note"], rows))
    harness.write_results(args.out, "speed_trials", {"quick": args.quick, "steps": steps, "rounds": rounds,
                                                    "section_seconds": times, "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
