"""LP-FT (Kumar et al. 2022): train the new head on the frozen backbone first, then fine-tune every weight.

Full fine-tuning with a random head changes the pretrained features most while the head is still wrong; starting
from a probed head keeps them closer to where they were (the paper's claim: as good in distribution, better under
distribution shift).

    phase 1, "probe":     backbone frozen (dropout off), only the head trains at method.lp_ft.probe_learning_rate
                          for probe_epochs (or probe_max_steps); checkpoints in RUN/probe_phase/checkpoints; the
                          head with the best validation score is kept.
    phase 2, "fine_tune": every weight trains, with a fresh optimizer and schedule at training.learning_rate;
                          checkpoints in RUN/checkpoints, as for method=full. Its best model is the run's model.

Both phases go through the one Trainer. Resume (``training.resume_from=latest``, the only form lp_ft takes):
phase 1 resumes from its newest checkpoint (a finished phase 1 only reloads its state and best head), then
phase 2 resumes from its newest checkpoint when it has one, else starts from the probed head.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from hftl.config import Config
from hftl.run import checkpoints
from hftl.run.freezing import freeze_backbone, unfreeze
from hftl.run.hooks import Hook
from hftl.run.training import Trainer, TrainResult

PROBE_DIR = "probe_phase"


def _phase_config(cfg: Config, checkpoint_root: Path, **training: Any) -> Config:
    resume = cfg.training.resume_from == "latest" and bool(checkpoints.list_checkpoints(checkpoint_root))
    return dataclasses.replace(
        cfg, training=dataclasses.replace(cfg.training, resume_from="latest" if resume else None, **training)
    )


def fit_lp_ft(
    cfg: Config,
    accelerator: Accelerator,
    model: torch.nn.Module,
    heads: list[str],
    make_loaders: Callable[[], tuple[DataLoader, DataLoader]],
    run_dir: Path,
    on_epoch_start: Callable[[int], None] | None = None,
    hooks: Sequence[Hook] = (),
) -> tuple[Trainer, TrainResult, TrainResult | None]:
    """Run both phases on model (every weight trainable on entry); returns (fine-tune trainer, its result, probe result).

    A hook that stops the probe phase ends the run there: (probe trainer, probe result, None), the probed model.
    """
    lp = cfg.method.lp_ft
    probe_dir = Path(run_dir) / PROBE_DIR
    probe_cfg = _phase_config(
        cfg, probe_dir, epochs=lp.probe_epochs, max_steps=lp.probe_max_steps, learning_rate=lp.probe_learning_rate
    )
    dropout_rates = freeze_backbone(model, heads)
    probe = Trainer(
        probe_cfg, accelerator, model, *make_loaders(), probe_dir, on_epoch_start, log_prefix="probe/", hooks=hooks
    )
    probe_result = probe.fit()  # ends with the best head loaded
    if probe_result.state.should_stop and probe_result.state.stop_reason != "early_stopping":
        return probe, probe_result, None
    model = accelerator.unwrap_model(probe.model)
    probe.release()

    unfreeze(model, dropout_rates)
    tune = Trainer(
        _phase_config(cfg, Path(run_dir)), accelerator, model, *make_loaders(), Path(run_dir), on_epoch_start, hooks=hooks
    )
    return tune, tune.fit(), probe_result
