"""The one training loop, on accelerate, for every modality and method.

Gradient accumulation (``accelerator.accumulate``), warmup + schedule, weight-decay groups, clipping, evaluation
with ``gather_for_metrics``, best-model selection on a validation metric, early stopping, atomic ``save_state``
checkpoints and exact resume (data order, RNG, optimizer and scheduler restored, finished batches skipped).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from hftl.config import Config
from hftl.errors import ConfigError
from hftl.run import checkpoints
from hftl.run.hooks import Hook, Hooks, TrainerState
from hftl.tasks import Evaluator
from hftl.tasks.classification import evaluate  # the classifier's (callers import it from here)

logger = logging.getLogger("hftl")

STATE_FILE = checkpoints.STATE_FILE
BEST_FILE = "best_trainable.safetensors"


@dataclass
class LoopInputs:
    """What a method's fit (one loop, or lp_ft's two) needs to build its Trainers."""

    cfg: Config
    accelerator: Accelerator
    model: torch.nn.Module  # the module to train, the method applied
    heads: list[str]  # top-level modules of the new head
    make_loaders: Callable[[], tuple[DataLoader, DataLoader]]  # fresh (train, validation) loaders
    run_dir: Path
    on_epoch_start: Callable[[int], None] | None = None  # e.g. the augmentation generator's set_epoch
    hooks: Sequence[Hook] = ()
    # probing methods: trains the head another way (on cached features) and returns its result, or None to run the
    # probe step by step; (config of the probe phase, its checkpoint folder, its tracker key prefix) -> result
    fit_probe: Callable[[Config, Path, str], TrainResult | None] | None = None
    # scores the model on a prepared loader (the task's: hftl.tasks); None: the classifier's evaluate
    evaluate: Evaluator | None = None


@dataclass
class TrainResult:
    state: TrainerState
    best_eval: dict[str, float]
    total_steps: int
    selection: dict[str, Any] | None = None  # a fit that chose its own hyper-parameters on validation (the probe's C)
    budget: dict[str, Any] | None = None  # a fit that is not the loop's steps (L-BFGS iterations)


def optimizer_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices (weights of linear/conv/embedding layers); never biases or normalisation scales."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def training_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's own loss; for a mixed batch (mixup/cutmix) w * CE(labels) + (1 - w) * CE(mix_labels)."""
    if "mix_labels" not in batch:
        return model(**batch).loss
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "mix_labels", "mix_weight")}
    logits = model(**inputs).logits.float()
    own = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
    partner = torch.nn.functional.cross_entropy(logits, batch["mix_labels"], reduction="none")
    weight = batch["mix_weight"].to(logits.dtype)
    return (weight * own + (1.0 - weight) * partner).mean()


def _iter_without_rng_draw(loader: DataLoader):
    """Iterate loader, leaving torch's global RNG as it was before the iterator started.

    Starting a DataLoader iterator draws a seed from the global RNG (on the first ``next``). A run resumed
    mid-epoch starts a new iterator after restoring the checkpoint's RNG state, where the uninterrupted run had
    drawn that seed before the checkpoint; without this, every later dropout mask would be shifted by one draw.
    """
    state = torch.get_rng_state()
    iterator = iter(loader)
    try:
        first = next(iterator)
    except StopIteration:
        return
    finally:
        torch.set_rng_state(state)
    yield first
    yield from iterator


def _improved(value: float, best: float | None, greater_is_better: bool) -> bool:
    if best is None:
        return True
    return value > best if greater_is_better else value < best


class Trainer:
    """Holds what the loop needs; ``fit()`` runs it. Built by the recipe, shared by every modality."""

    def __init__(
        self,
        cfg: Config,
        accelerator: Accelerator,
        model: torch.nn.Module,
        train_loader: DataLoader,
        eval_loader: DataLoader,
        run_dir: Path,
        on_epoch_start: Callable[[int], None] | None = None,
        log_prefix: str = "",
        hooks: Sequence[Hook] = (),
        evaluation: bool = True,
        progress_bar: bool = True,
        evaluator: Evaluator | None = None,
    ) -> None:
        """run_dir holds this loop's checkpoints; log_prefix goes before tracker keys (a phase of lp_ft: 'probe/').

        hooks see every step, evaluation and checkpoint (``hftl.run.hooks``). evaluation=False runs the optimizer
        steps alone, without validation or checkpoints (what a throughput benchmark times).
        """
        self.cfg, self.tc, self.accelerator, self.run_dir = cfg, cfg.training, accelerator, run_dir
        if accelerator.distributed_type == DistributedType.FSDP and not accelerator.is_fsdp2:
            raise ConfigError("FSDP version 1 is not supported: set fsdp_version: 2 (see recipes/accelerate/fsdp.yaml)")
        self.trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
        # The best model is its trainable weights AND the buffers training updates (batch norm's running statistics):
        # restoring the weights alone would pair the best step's weights with the last step's statistics.
        persistent = model.state_dict(keep_vars=True).keys()
        self.best_names = self.trainable_names + [n for n, _ in model.named_buffers() if n in persistent]
        self.on_epoch_start = on_epoch_start  # e.g. the augmentation generator's set_epoch
        self.log_prefix = log_prefix
        self.hooks = Hooks(hooks)
        self.evaluation, self.progress_bar = evaluation, progress_bar
        # the task's scoring (hftl.tasks): generation + WER for a speech recogniser; argmax + metrics by default
        self.evaluator = evaluator or (lambda m, loader: evaluate(m, loader, accelerator, cfg.evaluation.metrics))
        # fused: one kernel over all parameters (what Trainer uses by default); measured ~7% of a LoRA step on 2 CPU cores.
        self.optimizer = torch.optim.AdamW(
            optimizer_groups(model, self.tc.weight_decay), lr=self.tc.learning_rate, fused=True
        )
        self.model, self.optimizer, self.train_loader, self.eval_loader = accelerator.prepare(
            model, self.optimizer, train_loader, eval_loader
        )
        # Clipping walks this list, not model.parameters(): with LoRA or a probe most parameters have no gradient,
        # and walking the whole module tree every step cost more than the clipping (profile of a small model).
        # FSDP's clipping wants the full parameter list of its wrapped model.
        fsdp = accelerator.distributed_type == DistributedType.FSDP
        self.clipped = None if fsdp else [p for p in self.model.parameters() if p.requires_grad]
        # Steps are counted on the prepared (per-process) loader, so the schedule is right for any world size.
        self.steps_per_epoch = max(1, math.ceil(len(self.train_loader) / self.tc.gradient_accumulation_steps))
        if self.tc.max_steps is not None:
            self.total_steps = self.tc.max_steps
            self.num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        else:
            self.num_epochs = self.tc.epochs
            self.total_steps = self.num_epochs * self.steps_per_epoch
        # Not passed to accelerator.prepare: we step it once per optimizer step ourselves, whatever the world size.
        self.scheduler = get_scheduler(
            self.tc.lr_scheduler,
            self.optimizer,
            num_warmup_steps=round(self.tc.warmup_ratio * self.total_steps),
            num_training_steps=self.total_steps,
        )
        accelerator.register_for_checkpointing(self.scheduler)
        self.state = TrainerState(max_steps=self.total_steps)
        self.best_weights: dict[str, torch.Tensor] | None = None

    def _best_state(self) -> dict[str, torch.Tensor]:
        """Trainable weights and persistent buffers as full CPU tensors; gathered from every shard under FSDP, so
        every process calls this."""
        state = self.accelerator.get_state_dict(self.model)  # under FSDP: full tensors on the main process only
        return {n: state[n].detach().cpu().clone() for n in self.best_names if n in state}

    def _load_best_weights(self) -> None:
        unwrapped = self.accelerator.unwrap_model(self.model)
        known = {n for n, _ in unwrapped.named_parameters()} | {n for n, _ in unwrapped.named_buffers()}
        missing = set(self.best_weights) - known
        if missing:
            raise RuntimeError(f"best checkpoint weights do not fit the model: {sorted(missing)[:5]}")
        if self.accelerator.is_fsdp2:  # each process takes its shard of the main process's full tensors
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
            set_model_state_dict(self.model, self.best_weights, options=options)
        else:
            unwrapped.load_state_dict(self.best_weights, strict=False)

    def release(self) -> None:
        """Drop this loop's objects from the accelerator, so that another Trainer (lp_ft's second phase) can use it."""
        self.accelerator.free_memory()
        # accelerate has no public way to unregister a checkpointed object; save_state would save this one too.
        self.accelerator._custom_objects.remove(self.scheduler)

    # -- checkpoints ---------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """save_state into a temporary folder, add our state and the best weights, then rename into place."""
        acc = self.accelerator
        final = checkpoints.checkpoint_dir(self.run_dir, self.state.step)
        tmp = checkpoints.temporary_dir(final, clear=acc.is_main_process)
        acc.wait_for_everyone()  # every rank writes into tmp: only after the main process cleared leftovers
        acc.save_state(str(tmp))
        acc.wait_for_everyone()  # every rank's files (e.g. random_states_1.pkl) are in tmp before it is committed
        if acc.is_main_process:
            if self.best_weights is not None:
                save_file(self.best_weights, str(tmp / BEST_FILE))
            (tmp / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=1))
            checkpoints.commit(tmp, final)
            checkpoints.prune(self.run_dir, self.tc.save_total_limit)
        acc.wait_for_everyone()
        return final

    def load_checkpoint(self, path: Path) -> None:
        self.accelerator.load_state(str(path))
        self.state = TrainerState(**{**json.loads((path / STATE_FILE).read_text()), "max_steps": self.total_steps})
        if (path / BEST_FILE).exists():
            self.best_weights = load_file(str(path / BEST_FILE))
        logger.info("resumed from %s at step %d (epoch %d)", path, self.state.step, self.state.epoch)

    # -- evaluation ----------------------------------------------------------------------------------------------

    def _evaluate_and_checkpoint(self) -> bool:
        """Evaluate, track the best model, checkpoint; True when early stopping says stop."""
        metrics, _, _ = self.evaluator(self.model, self.eval_loader)
        self.model.train()
        if self.tc.metric_for_best not in metrics:
            raise ConfigError(f"training.metric_for_best={self.tc.metric_for_best!r} is not computed; have {sorted(metrics)}")
        value = metrics[self.tc.metric_for_best]
        record = {"step": self.state.step, "epoch": self.state.epoch, **{f"eval/{k}": v for k, v in metrics.items()}}
        self.state.history.append(record)
        self.accelerator.log({f"{self.log_prefix}eval/{k}": v for k, v in metrics.items()}, step=self.state.step)
        if _improved(value, self.state.best_metric, self.tc.greater_is_better):
            self.state.best_metric, self.state.best_step = value, self.state.step
            self.state.evals_without_improvement = 0
            self.best_weights = self._best_state()
        else:
            self.state.evals_without_improvement += 1
        self.hooks.on_evaluate(self.state, metrics)
        patience = self.tc.early_stopping_patience
        early = self.state.step < (self.tc.min_steps or 0)  # a plateau before min_steps is not convergence
        if patience is not None and self.state.evals_without_improvement >= patience and not early and not self.state.should_stop:
            self.state.should_stop, self.state.stop_reason = True, "early_stopping"
        stop = self._note_stop()
        logger.info(
            "step %d: eval %s=%.4f (best %.4f at step %d)%s",
            self.state.step, self.tc.metric_for_best, value, self.state.best_metric, self.state.best_step,
            f", stop ({self.state.stop_reason})" if stop else "",
        )  # fmt: skip
        path = self.save_checkpoint()
        self.hooks.on_checkpoint(self.state, path)
        return self._note_stop()

    def _note_stop(self) -> bool:
        """True when early stopping or a hook asked to stop; recorded in the state (and so in the next checkpoint).

        Every process calls this at the same point. A hook may decide on one process alone (a clock, a file): its stop
        is shared, since a process that kept training would wait forever for the others at the next collective.
        """
        if self.accelerator.num_processes > 1 and self.hooks.hooks:
            flag = torch.tensor([float(self.state.should_stop)], device=self.accelerator.device)
            if self.accelerator.reduce(flag, "sum").item() > 0 and not self.state.should_stop:
                self.state.should_stop, self.state.stop_reason = True, "stopped by a hook on another process"
        if self.state.should_stop:
            self.state.stopped_early = True
            self.state.stop_reason = self.state.stop_reason or "stopped by a hook"
        return self.state.stopped_early

    # -- the loop ------------------------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        acc, tc, state = self.accelerator, self.tc, self.state
        if tc.resume_from is not None:
            self.load_checkpoint(checkpoints.resolve(self.run_dir, tc.resume_from))
            state = self.state
        n_train = len(self.train_loader.dataset)
        logger.info(
            "running: %d train / %d eval samples, %d steps (%d epochs x %d), batch %d x %d accum x %d processes",
            n_train, len(self.eval_loader.dataset), self.total_steps, self.num_epochs, self.steps_per_epoch,
            tc.batch_size, tc.gradient_accumulation_steps, acc.num_processes,
        )  # fmt: skip
        progress = tqdm(
            total=self.total_steps, initial=state.step, desc="train",
            disable=not (self.progress_bar and acc.is_local_main_process),
        )
        self.model.train()
        stop = state.step >= self.total_steps or state.stopped_early
        running_loss, running_n = 0.0, 0
        while not stop and state.epoch < self.num_epochs:
            self.train_loader.set_epoch(state.epoch)  # the seedable sampler: epoch e always sees the same order
            if self.on_epoch_start is not None:
                self.on_epoch_start(state.epoch)
            if state.batches_in_epoch:  # resumed mid-epoch: skip what the checkpoint already trained on
                batches = _iter_without_rng_draw(acc.skip_first_batches(self.train_loader, state.batches_in_epoch))
            else:
                batches = iter(self.train_loader)
            tick = time.perf_counter()
            for batch in batches:
                with acc.accumulate(self.model):
                    loss = training_loss(self.model, batch)
                    acc.backward(loss)
                    if acc.sync_gradients and tc.max_grad_norm is not None:
                        acc.clip_grad_norm_(self.clipped or self.model.parameters(), tc.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                state.batches_in_epoch += 1
                state.samples_seen += len(batch["labels"]) * acc.num_processes
                # A tensor sum, read once per log step: .item() every step would wait for the device every step.
                running_loss = running_loss + loss.detach().float()
                running_n += 1
                if not acc.sync_gradients:
                    continue
                self.scheduler.step()
                state.step += 1
                progress.update(1)
                finished = state.step >= self.total_steps
                if state.step % tc.log_every_steps == 0 or finished:
                    mean_loss = acc.reduce(running_loss / running_n, "mean").item()
                    lr = self.scheduler.get_last_lr()[0]
                    acc.log({f"{self.log_prefix}train/loss": mean_loss, f"{self.log_prefix}train/lr": lr}, step=state.step)
                    progress.set_postfix(loss=f"{mean_loss:.4f}")
                    running_loss, running_n = 0.0, 0
                self.hooks.on_step(state)
                halt = finished or self._note_stop()  # a hook's stop: evaluated and checkpointed now, as an early stop
                if self.evaluation and tc.eval_steps is not None and (state.step % tc.eval_steps == 0 or halt):
                    state.train_seconds += time.perf_counter() - tick
                    stop = self._evaluate_and_checkpoint()
                    tick = time.perf_counter()
                stop = stop or halt
                if stop:
                    break
            state.train_seconds += time.perf_counter() - tick
            epoch_done = state.batches_in_epoch >= len(self.train_loader)
            if epoch_done:
                state.epoch, state.batches_in_epoch = state.epoch + 1, 0
            if self.evaluation and tc.eval_steps is None and (epoch_done or stop):
                stop = self._evaluate_and_checkpoint() or stop
        progress.close()
        # Select the best model for what follows (test scores, saving, export).
        if self.best_weights is not None:
            self._load_best_weights()
        best = next((h for h in state.history if h["step"] == state.best_step), {})
        best_eval = {k.removeprefix("eval/"): v for k, v in best.items() if k.startswith("eval/")}
        return TrainResult(state=state, best_eval=best_eval, total_steps=self.total_steps)
