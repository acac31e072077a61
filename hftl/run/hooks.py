"""What the training loop tells the outside world, and how the outside world stops it.

A ``Hook`` sees every optimizer step, every evaluation and every committed checkpoint of a ``Trainer``; all three
methods are no-ops by default, so a hook overrides only what it needs. Benchmarks time steps with ``on_step``;
hyper-parameter search prunes a trial from ``on_evaluate``.

To stop training from outside, a hook sets ``state.should_stop = True`` (and ``state.stop_reason``): the loop ends
after the current step as an early stop does -- it evaluates at that step if it has not yet, checkpoints, loads the
best weights, and the recipe writes results.json (``train.stopped_early`` true, ``train.stop_reason`` the reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainerState:
    """Where training stands; saved in every checkpoint so a resumed run continues exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch in progress
    batches_in_epoch: int = 0  # micro-batches of that epoch already consumed
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    stop_reason: str = ""  # "early_stopping", or what the hook that stopped the run said
    train_seconds: float = 0.0
    samples_seen: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    max_steps: int = 0  # optimizer steps this loop runs in all (set by the Trainer)
    should_stop: bool = False  # set by a hook: end after the current step

    @property
    def global_step(self) -> int:
        return self.step


class Hook:
    """Override any of these; each is called on every process (check ``accelerator.is_main_process`` to write)."""

    def on_step(self, state: TrainerState) -> None:
        """After each optimizer step (``state.global_step`` already counts it)."""

    def on_evaluate(self, state: TrainerState, metrics: dict[str, float]) -> None:
        """After each validation pass; ``metrics`` are this evaluation's (accuracy, loss, ...)."""

    def on_checkpoint(self, state: TrainerState, path: Path) -> None:
        """After a checkpoint is committed to ``path``."""


class Hooks:
    """The Trainer's hooks, called in the order given."""

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        for hook in hooks:
            if not isinstance(hook, Hook):
                raise TypeError(f"hooks must be hftl.run.hooks.Hook instances, got {type(hook).__name__}")
        self.hooks = list(hooks)

    def on_step(self, state: TrainerState) -> None:
        for hook in self.hooks:
            hook.on_step(state)

    def on_evaluate(self, state: TrainerState, metrics: dict[str, float]) -> None:
        for hook in self.hooks:
            hook.on_evaluate(state, dict(metrics))

    def on_checkpoint(self, state: TrainerState, path: Path) -> None:
        for hook in self.hooks:
            hook.on_checkpoint(state, path)
