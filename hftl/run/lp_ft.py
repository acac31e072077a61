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
from pathlib import Path
from typing import Any

import torch

from hftl.config import Config
from hftl.run import checkpoints
from hftl.run.freezing import freeze_backbone, unfreeze
from hftl.run.training import LoopInputs, Trainer, TrainResult

PROBE_DIR = "probe_phase"
PROBE_LOG_PREFIX = "probe/"  # tracker keys of the probe phase (probe/train/loss ...), step by step or cached


def _phase_config(cfg: Config, checkpoint_root: Path, **training: Any) -> Config:
    resume = cfg.training.resume_from == "latest" and bool(checkpoints.list_checkpoints(checkpoint_root))
    return dataclasses.replace(
        cfg, training=dataclasses.replace(cfg.training, resume_from="latest" if resume else None, **training)
    )


def fit_lp_ft(loop: LoopInputs) -> tuple[torch.nn.Module, TrainResult, TrainResult | None]:
    """Run both phases on loop.model (every weight trainable on entry); returns (fine-tuned model, its result, probe
    result). ``loop.fit_probe`` may train the probe phase's head on cached features instead of step by step.

    A hook that stops the probe phase ends the run there: (the probed model, probe result, None).
    """
    cfg, accelerator, run_dir, hooks = loop.cfg, loop.accelerator, Path(loop.run_dir), loop.hooks
    lp = cfg.method.lp_ft
    probe_dir = run_dir / PROBE_DIR
    probe_cfg = _phase_config(
        cfg, probe_dir, epochs=lp.probe_epochs, max_steps=lp.probe_max_steps, learning_rate=lp.probe_learning_rate
    )
    dropout_rates = freeze_backbone(loop.model, loop.heads)
    model = loop.model
    probe_result = loop.fit_probe(probe_cfg, probe_dir, PROBE_LOG_PREFIX) if loop.fit_probe is not None else None  # cached
    if probe_result is not None and probe_result.state.should_stop and probe_result.state.stop_reason != "early_stopping":
        return accelerator.prepare(model), probe_result, None  # a hook stopped the cached probe: the probed model
    if probe_result is None:
        probe = Trainer(
            probe_cfg, accelerator, loop.model, *loop.make_loaders(), probe_dir, loop.on_epoch_start, log_prefix=PROBE_LOG_PREFIX,
            hooks=hooks,
        )  # fmt: skip
        probe_result = probe.fit()  # ends with the best head loaded
        if probe_result.state.should_stop and probe_result.state.stop_reason != "early_stopping":
            return probe.model, probe_result, None
        model = accelerator.unwrap_model(probe.model)
        probe.release()

    unfreeze(model, dropout_rates)
    tune = Trainer(
        _phase_config(cfg, run_dir), accelerator, model, *loop.make_loaders(), run_dir, loop.on_epoch_start, hooks=hooks
    )
    result = tune.fit()
    return tune.model, result, probe_result
