"""The fine-tuning recipe: config -> data -> model -> method -> loop -> eval -> save (-> export) (-> push).

``python recipes/finetune.py CONFIG [k=v ...]``, ``accelerate launch recipes/finetune.py CONFIG [k=v ...]`` and
``hftl train CONFIG [k=v ...]`` all land in ``run()``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader

import hftl
from hftl import files
from hftl.augment import AugmentRng
from hftl.config import Config, save_config
from hftl.errors import ConfigError
from hftl.evaluation import forgetting, measure
from hftl.modalities import get_modality
from hftl.run import checkpoints, launcher, rundir
from hftl.run.data import load_splits
from hftl.run.hooks import Hook
from hftl.run.methods import apply_method, get_method
from hftl.run.metrics import check_metric_names
from hftl.run.models import (
    build_model,
    count_parameters,
    enable_gradient_checkpointing,
    is_gradient_checkpointing,
    load_processor,
)
from hftl.run.record import DataInfo, RunInfo, RunRecord, TrainInfo, write_record
from hftl.run.training import TrainResult, evaluate

logger = logging.getLogger("hftl")


def library_versions() -> dict[str, str]:
    import accelerate
    import datasets
    import evaluate as hf_evaluate
    import peft
    import transformers

    return {
        "hftl": hftl.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "datasets": datasets.__version__,
        "evaluate": hf_evaluate.__version__,
    }


def _flat_hparams(cfg: Config) -> dict[str, Any]:
    """Scalar-only view of the config for trackers (TensorBoard's hparams accept no lists or None)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            flat[prefix[:-1]] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk("", cfg.to_dict())
    return flat


def _has_accelerator_device() -> bool:
    from accelerate.utils import is_mps_available, is_npu_available, is_xpu_available

    return torch.cuda.is_available() or is_mps_available() or is_xpu_available() or is_npu_available()


def make_accelerator(cfg: Config, run_dir: Path) -> Accelerator:
    tracking = cfg.training.tracking
    if tracking != "none":
        from accelerate.utils import imports

        # accelerate drops an unavailable tracker with a log line only; a user who asked for one should know.
        if not getattr(imports, f"is_{tracking}_available")():
            raise ConfigError(f"training.tracking={tracking}: the {tracking} package is not installed (pip install {tracking})")
    # The recipe config is the one truth for precision: accelerate would silently let our argument win over the launcher's.
    launcher_precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launcher_precision not in ("no", cfg.training.mixed_precision):
        raise ConfigError(
            f"accelerate launch asks for mixed precision {launcher_precision!r}, but training.mixed_precision="
            f"{cfg.training.mixed_precision}: set training.mixed_precision={launcher_precision} "
            "(and leave the launcher's at 'no')"
        )
    # AcceleratorState is a process-wide singleton that refuses a second precision: a later run in the same process
    # (a notebook, a sweep, a test) with another mixed_precision would fail. Each run sets its own; the distributed
    # part (PartialState: ranks, device) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(
        cpu=not _has_accelerator_device(),
        gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
        mixed_precision=cfg.training.mixed_precision,
        log_with=None if tracking == "none" else tracking,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        # A seedable sampler makes epoch e's order a function of (seed, e): what exact resume needs.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.training.seed),
    )
    # `accelerate launch --cpu --num_processes N` silently starts one process: say so instead of training with 1.
    short = launcher.check_world_size(accelerator.num_processes, on_cpu=accelerator.device.type == "cpu")
    if short:
        raise ConfigError(short)
    # A launcher (e.g. a DeepSpeed config) may set accumulation too; the schedule is computed from ours.
    if accelerator.gradient_accumulation_steps != cfg.training.gradient_accumulation_steps:
        raise ConfigError(
            f"the accelerate launch config sets gradient_accumulation_steps={accelerator.gradient_accumulation_steps}, "
            f"but training.gradient_accumulation_steps={cfg.training.gradient_accumulation_steps}: "
            "set it in the recipe config only"
        )
    return accelerator


def save_outputs(
    cfg: Config, accelerator: Accelerator, model: torch.nn.Module, processor: Any, run_dir: Path, label_names: list[str]
) -> None:
    """adapter/ (LoRA) and model/ (merged, with its processor), each written aside and swapped in when complete.

    Every process calls this (under FSDP the weights are gathered from all of them); only the main process writes.
    """
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    saves_adapter = get_method(cfg.method.name).saves_adapter
    if saves_adapter:
        tmp = run_dir / ".tmp-adapter"
        unwrapped.save_pretrained(str(tmp), state_dict=state)
        files.replace_dir(tmp, run_dir / "adapter")
    if not cfg.output.save_merged:
        return
    tmp = run_dir / ".tmp-model"
    if not saves_adapter:
        unwrapped.save_pretrained(str(tmp), state_dict=state, safe_serialization=True)
    elif accelerator.is_fsdp2:  # a sharded model cannot merge in place: merge the saved adapter into a fresh base
        from hftl.run.models import find_adapter, load_adapter_classifier

        adapter = find_adapter(str(run_dir / "adapter"))
        merged = load_adapter_classifier(
            adapter, get_modality(cfg.modality), label_names, trainable=False,
            trust_remote_code=cfg.model.trust_remote_code, cfg=cfg,
        ).merge_and_unload()  # fmt: skip
        merged.save_pretrained(str(tmp), safe_serialization=True)
    else:
        unwrapped.merge_and_unload().save_pretrained(str(tmp), safe_serialization=True)
    processor.save_pretrained(str(tmp))
    files.replace_dir(tmp, run_dir / "model")


def run(cfg: Config, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train, evaluate and save one run; returns the results written to RUN/results.json.

    hooks see every step, evaluation and checkpoint of the loop (both phases of lp_ft) and may stop it early.
    """
    started = time.time()
    run_dir = Path(cfg.output.dir)
    modality = get_modality(cfg.modality)
    check_metric_names(cfg.evaluation.metrics)
    accelerator = make_accelerator(cfg, run_dir)
    if accelerator.is_main_process:
        rundir.prepare_run_dir(run_dir, overwrite=cfg.output.overwrite, resuming=cfg.training.resume_from is not None)
        if cfg.training.resume_from is None and checkpoints.list_checkpoints(run_dir):
            logger.warning("%s has checkpoints of an unfinished run; pass training.resume_from=latest to continue it", run_dir)
        save_config(cfg, run_dir / rundir.CONFIG)
    accelerator.wait_for_everyone()
    set_seed(cfg.training.seed)

    # data (the main process builds caches first; the others then read them)
    skipped: list[dict[str, Any]] = []  # rows left out under data.on_bad_sample=skip
    with accelerator.main_process_first():
        splits, label_names = load_splits(cfg.data, lambda value: modality.check_input(value, cfg), skipped)
    if accelerator.is_main_process and cfg.data.on_bad_sample == "skip":
        files.write_json_atomic(run_dir / rundir.SKIPPED, skipped)
    # model + method
    built = build_model(cfg, modality, label_names)
    processor = load_processor(cfg, modality, built)
    extra: dict[str, Any] = {}
    if cfg.evaluation.forgetting:
        forgetting.preflight(cfg)  # fail now, not after training
    if cfg.evaluation.transferability and accelerator.is_main_process:
        extra["transferability"] = measure.transferability(cfg, modality, processor, built.model, splits)
    model = apply_method(cfg, modality, built)
    if cfg.training.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    params = count_parameters(model)
    logger.info(
        "model %s, method %s: %s trainable / %s total parameters (%.2f%%)",
        cfg.model.source, cfg.method.name, f"{params['trainable']:,}", f"{params['total']:,}",
        100 * params["trainable"] / params["total"],
    )  # fmt: skip
    augment_rng = AugmentRng(cfg.training.seed)  # draws per (seed, epoch, row): the loop sets the epoch
    if accelerator.is_main_process:  # before any training step: a full disk should not end a long run
        needed = rundir.estimate_run_bytes(params["total"], params["trainable"], cfg.training.save_total_limit)
        rundir.check_free_space(run_dir, needed)
    with accelerator.main_process_first():
        prepared = {
            name: modality.prepare(split, processor, cfg, train=name == "train", augment_rng=augment_rng)
            for name, split in splits.items()
        }

    def loader(name: str, batch_size: int, shuffle: bool) -> DataLoader:
        collate = modality.collator(processor, cfg, train=name == "train", augment_rng=augment_rng)
        return DataLoader(
            prepared[name], batch_size=batch_size, shuffle=shuffle, collate_fn=collate, num_workers=cfg.training.num_workers
        )

    def train_and_eval_loaders() -> tuple[DataLoader, DataLoader]:
        return (
            loader("train", cfg.training.batch_size, shuffle=True),
            loader("validation", cfg.evaluation.batch_size, shuffle=False),
        )

    # the loop (lp_ft: twice, probe then fine-tune)
    if cfg.training.tracking != "none":
        accelerator.init_trackers(cfg.run_name, config=_flat_hparams(cfg))
    trainer, result, probe_result = get_method(cfg.method.name).fit(
        cfg, accelerator, model, built.head_modules, train_and_eval_loaders, run_dir, augment_rng.set_epoch, hooks
    )

    # test scores of the selected (best) model
    test_metrics: dict[str, float] = {}
    if cfg.evaluation.test:
        test_loader = accelerator.prepare(loader("test", cfg.evaluation.batch_size, shuffle=False))
        test_metrics, _, _ = evaluate(trainer.model, test_loader, accelerator, cfg.evaluation.metrics)
        accelerator.log({f"test/{k}": v for k, v in test_metrics.items()}, step=result.state.step)
    extra.update(measure.after_training(cfg, modality, processor, trainer.model, accelerator, splits, label_names))

    record = RunRecord(
        run=RunInfo(
            name=cfg.run_name,
            modality=cfg.modality,
            method=cfg.method.name,
            model=cfg.model.source,
            dataset=cfg.data.source,
            seed=cfg.training.seed,
            world_size=accelerator.num_processes,
            device=str(accelerator.device),
            mixed_precision=cfg.training.mixed_precision,
            gradient_checkpointing=is_gradient_checkpointing(trainer.model),  # the model's state, not the config
            started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            wall_s=round(time.time() - started, 2),
            versions=library_versions(),
        ),
        params=params,
        data=DataInfo(label_names, {name: len(split) for name, split in splits.items()}, len(skipped)),
        train=train_info(result, cfg.training.metric_for_best),
        eval=result.best_eval,
        test=test_metrics,
        history=result.state.history,
        measurements=extra,
    )
    if probe_result is not None:  # lp_ft: the time and steps of both phases, each phase apart, one history
        record.train = both_phases(probe_result, result, cfg.training.metric_for_best)
        record.history = [
            {"phase": phase, **entry}
            for phase, phase_result in (("probe", probe_result), ("fine_tune", result))
            for entry in phase_result.state.history
        ]
    results = record.to_dict()
    save_outputs(cfg, accelerator, trainer.model, processor, run_dir, label_names)
    if accelerator.is_main_process:
        write_record(run_dir, record)  # written last: its presence means "finished"
        logger.info("done: %s  eval %s  test %s", run_dir, _short(result.best_eval), _short(test_metrics))
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes the trackers and, in accelerate 1.x, the process group: after the last barrier
    if cfg.export.enabled and accelerator.is_main_process:
        from hftl.deploy.export import export_run

        export_run(run_dir)
    if cfg.push.enabled and accelerator.is_main_process:
        from hftl.deploy.hub import push_run

        push_run(run_dir, cfg.push)
    return results


def train_info(result: TrainResult, metric_for_best: str | None = None) -> TrainInfo:
    """results.json's train section for one loop."""
    state = result.state
    return TrainInfo(
        runtime_s=round(state.train_seconds, 3),
        samples_per_second=round(state.samples_seen / state.train_seconds, 3) if state.train_seconds else 0.0,
        steps=state.step,
        total_steps=result.total_steps,
        epochs_completed=state.epoch,
        best_step=state.best_step,
        stopped_early=state.stopped_early,
        stop_reason=state.stop_reason,
        metric_for_best=metric_for_best,
    )


def both_phases(probe: TrainResult, tune: TrainResult, metric_for_best: str | None = None) -> TrainInfo:
    """lp_ft: runtime, throughput and steps over both phases; each phase's own numbers under 'phases'.

    The other fields of the train section (best_step, epochs_completed, ...) are the fine-tune phase's, whose best
    model is the run's model.
    """
    seconds = probe.state.train_seconds + tune.state.train_seconds
    samples = probe.state.samples_seen + tune.state.samples_seen
    return dataclasses.replace(
        train_info(tune, metric_for_best),
        runtime_s=round(seconds, 3),
        samples_per_second=round(samples / seconds, 3) if seconds else 0.0,
        steps=probe.state.step + tune.state.step,
        total_steps=probe.total_steps + tune.total_steps,
        phases={"probe": train_info(probe).to_dict(), "fine_tune": train_info(tune).to_dict()},
    )


def _short(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k in ("accuracy", "f1_macro", "loss"))

