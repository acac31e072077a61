"""The fine-tuning recipe, in four stages, each callable alone:

    setup(cfg)                  -> Setup    run dir, accelerator, data, model with its method applied (all checks)
    fit(setup, hooks)           -> Fitted   the method's training loop(s); the best model loaded
    score(setup, fitted)        -> Scores   test metrics and the after-training measurements (shift, forgetting)
    save(setup, fitted, scores) -> dict     adapter/, model/, results.json (-> export) (-> push)

``python recipes/finetune.py CONFIG [k=v ...]``, ``accelerate launch recipes/finetune.py CONFIG [k=v ...]`` and
``hftl train CONFIG [k=v ...]`` all land in ``run()``, which chains them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader

import hftl
from hftl import files
from hftl.augment import AugmentRng
from hftl.config import Config, save_config
from hftl.deploy.export import export_run
from hftl.deploy.hub import push_run
from hftl.errors import ConfigError
from hftl.evaluation import cached_probe, forgetting, measure
from hftl.modalities import Modality, get_modality
from hftl.models import refuse_export
from hftl.run import checkpoints, launcher, precision, rundir, study
from hftl.run.data import load_splits
from hftl.run.hooks import Hook
from hftl.run.methods import apply_method, get_method
from hftl.run.metrics import check_metric_names
from hftl.run.metrics.per_class import per_class_report
from hftl.run.models import (
    BuiltModel,
    build_model,
    count_parameters,
    enable_gradient_checkpointing,
    find_adapter,
    is_gradient_checkpointing,
    load_processor,
    merge_adapter,
)
from hftl.run.record import DataInfo, RunInfo, RunRecord, TrainInfo, write_record
from hftl.run.training import LoopInputs, TrainResult
from hftl.run.transcribed_data import load_transcribed_splits
from hftl.tasks import Evaluator, Task, get_task

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
    if launcher_precision not in ("no", cfg.training.mixed_precision) and cfg.training.mixed_precision != precision.AUTO:
        raise ConfigError(
            f"accelerate launch asks for mixed precision {launcher_precision!r}, but training.mixed_precision="
            f"{cfg.training.mixed_precision}: set training.mixed_precision={launcher_precision} "
            "(and leave the launcher's at 'no')"
        )
    # AcceleratorState is a process-wide singleton that refuses a second precision: a later run in the same process
    # (a notebook, a sweep, a test) with another mixed_precision would fail. Each run sets its own; the distributed
    # part (PartialState: ranks, device) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    on_cpu = not _has_accelerator_device()
    device_type = "cpu" if on_cpu else PartialState().device.type
    accelerator = Accelerator(
        cpu=on_cpu,
        gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
        mixed_precision=precision.resolve(cfg.training.mixed_precision, device_type),
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
        adapter = find_adapter(str(run_dir / "adapter"))
        merged = merge_adapter(adapter, get_modality(cfg.modality), label_names, cfg)
        merged.save_pretrained(str(tmp), safe_serialization=True)
    else:
        unwrapped.merge_and_unload().save_pretrained(str(tmp), safe_serialization=True)
    processor.save_pretrained(str(tmp))
    files.replace_dir(tmp, run_dir / "model")


@dataclass
class Setup:
    """What setup() built: the accelerator, the data (raw and prepared), the model ready for its method."""

    cfg: Config
    run_dir: Path
    started: float  # time.time() at the start, for the record's wall time
    accelerator: Accelerator
    modality: Modality
    splits: dict[str, Any]  # raw splits
    label_names: list[Any]
    skipped: list[dict[str, Any]]  # rows left out under data.on_bad_sample=skip
    built: BuiltModel
    processor: Any
    model: torch.nn.Module  # the module to train (the method applied)
    params: dict[str, int]
    augment_rng: AugmentRng
    prepared: dict[str, Any]  # model-ready splits
    measurements: dict[str, Any] = field(default_factory=dict)  # taken so far (transferability, before training)
    row_ids: dict[str, list[str]] = field(default_factory=dict)  # each split's rows as "SOURCE_SPLIT:ROW", in order

    @property
    def task(self) -> Task:
        return get_task(self.cfg.task)

    @property
    def evaluator(self) -> Evaluator:
        """Scores a model on a prepared loader the task's way (argmax + metrics; generated transcripts + WER)."""
        return self.task.evaluator(self.cfg, self.accelerator, self.processor)

    def loader(self, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        cfg = self.cfg
        collate = self.task.collator(self.modality, self.processor, cfg, train=name == "train", augment_rng=self.augment_rng)
        return DataLoader(
            self.prepared[name], batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
            num_workers=cfg.training.num_workers,
        )  # fmt: skip

    def train_and_eval_loaders(self) -> tuple[DataLoader, DataLoader]:
        return (
            self.loader("train", self.cfg.training.batch_size, shuffle=True),
            self.loader("validation", self.cfg.evaluation.batch_size, shuffle=False),
        )


@dataclass
class Fitted:
    model: torch.nn.Module  # the run's model (prepared), its best weights loaded
    result: TrainResult
    probe_result: TrainResult | None = None  # lp_ft's probe phase


@dataclass
class Scores:
    test: dict[str, float]
    measurements: dict[str, Any]  # every measurement of the run (before and after training)
    per_class: dict[str, Any] = field(default_factory=dict)  # the test split's per-class metrics, confusion matrix


def run(cfg: Config, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train, evaluate and save one run; returns the results written to RUN/results.json.

    hooks see every step, evaluation and checkpoint of the loop (both phases of lp_ft) and may stop it early.
    """
    ready = setup(cfg)
    fitted = fit(ready, hooks)
    return save(ready, fitted, score(ready, fitted))


def setup(cfg: Config) -> Setup:
    """The run directory, accelerator, data, model and method: everything up to the first training step.

    Every check that can fail (config, data, model, disk space, the forgetting probe's needs) fails here.
    """
    started = time.time()
    run_dir = Path(cfg.output.dir)
    modality = get_modality(cfg.modality)
    task = get_task(cfg.task)
    if task.labels == "class":
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
    skipped: list[dict[str, Any]] = []
    row_ids: dict[str, list[str]] = {}
    with accelerator.main_process_first():
        check = lambda value: modality.check_input(value, cfg)  # noqa: E731
        if task.labels == "transcript":
            splits, label_names = load_transcribed_splits(cfg.data, cfg.asr.extra_splits, check, skipped), []
        else:
            splits, label_names = load_splits(cfg.data, check, skipped, row_ids)
    if accelerator.is_main_process and cfg.data.on_bad_sample == "skip":
        files.write_json_atomic(run_dir / rundir.SKIPPED, skipped)
    # model + method
    built = build_model(cfg, modality, label_names)
    if cfg.export.enabled:  # before training: the export at the end would fail
        refuse_export(getattr(built.model.config, "model_type", None), "export.enabled=true")
    processor = load_processor(cfg, modality, built)
    measurements: dict[str, Any] = {}
    if cfg.evaluation.forgetting:
        forgetting.preflight(cfg)  # fail now, not after training
    if cfg.evaluation.transferability and accelerator.is_main_process:
        measurements["transferability"] = measure.transferability(cfg, modality, processor, built.model, splits)
    model = apply_method(cfg, modality, built)
    task.adapt_method(model, cfg)
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
            name: task.prepare(modality, split, processor, cfg, train=name == "train", augment_rng=augment_rng)
            for name, split in splits.items()
        }
    ready = Setup(
        cfg, run_dir, started, accelerator, modality, splits, label_names, skipped, built, processor, model, params,
        augment_rng, prepared, measurements, row_ids,
    )  # fmt: skip
    if task.labels == "transcript" and cfg.asr.source_baseline:
        # The method applied leaves the source's outputs as they were (LoRA's B starts at zero): this is the source model.
        model.to(accelerator.device)
        measurements["source_model"] = score_splits(ready, model, ["validation", "test", *cfg.asr.extra_splits])
    return ready


def score_splits(ready: Setup, model: torch.nn.Module, names: list[str]) -> dict[str, dict[str, float]]:
    """The task's metrics of ``model`` on each named prepared split (every process takes part)."""
    batch = ready.cfg.evaluation.batch_size
    return {name: ready.evaluator(model, ready.accelerator.prepare(ready.loader(name, batch, shuffle=False)))[0]
            for name in names}  # fmt: skip


def fit(ready: Setup, hooks: Sequence[Hook] = ()) -> Fitted:
    """The method's training loop(s) (lp_ft: probe, then fine-tune); ends with the best model loaded."""
    cfg, accelerator = ready.cfg, ready.accelerator
    if cfg.training.tracking != "none":
        accelerator.init_trackers(cfg.run_name, config=_flat_hparams(cfg))
    method = get_method(cfg.method.name)
    loop = LoopInputs(
        cfg, accelerator, ready.model, ready.built.head_modules, ready.train_and_eval_loaders, ready.run_dir,
        ready.augment_rng.set_epoch, hooks,
        fit_probe=_cached_probe_fitter(ready, hooks) if method.probes_frozen_features else None,
        evaluate=ready.evaluator,
    )  # fmt: skip
    model, result, probe_result = method.fit(loop)
    return Fitted(model, result, probe_result)


def _cached_probe_fitter(
    ready: Setup, hooks: Sequence[Hook] = ()
) -> Callable[[Config, Path, str], TrainResult | None] | None:
    """A function training the head on cached frozen-backbone features (hftl/evaluation/cached_probe.py), or None
    when the cache is off (logged with the reason, e.g. augmentation)."""
    cfg = ready.cfg
    reason = cached_probe.cache_off_reason(cfg)
    if reason is not None:
        logger.info("probe feature cache off: %s; the probe runs the backbone every step", reason)
        return None
    collate = ready.modality.collator(ready.processor, cfg)
    fingerprints = {name: getattr(split, "_fingerprint", None) for name, split in ready.splits.items()}

    def fit_probe(probe_cfg: Config, probe_dir: Path, log_prefix: str) -> TrainResult | None:
        return cached_probe.fit_cached_probe(
            probe_cfg, ready.accelerator, ready.model, ready.built.head_modules, ready.prepared, collate, probe_dir,
            log_prefix, fingerprints, hooks,
        )  # fmt: skip

    return fit_probe


def _cached_probe_test(ready: Setup, model: torch.nn.Module) -> tuple[dict[str, float], Any, Any] | None:
    """A linear probe's test scores from the frozen backbone's cached test features (computed once per backbone and
    data set, shared by every seed and size); None (score through the model) for other methods or with the cache off."""
    cfg = ready.cfg
    method = get_method(cfg.method.name)
    if method.changes_backbone or not method.probes_frozen_features or cached_probe.cache_off_reason(cfg) is not None:
        return None
    if ready.task.name != "classification":
        return None
    return cached_probe.cached_split_scores(
        cfg, ready.accelerator, model, ready.built.head_modules, ready.prepared["test"],
        ready.modality.collator(ready.processor, cfg), "test", cfg.evaluation.metrics,
        getattr(ready.splits["test"], "_fingerprint", None),
    )  # fmt: skip


def score(ready: Setup, fitted: Fitted) -> Scores:
    """Test scores of the selected (best) model, and what the run measures after training (shift, forgetting)."""
    cfg, accelerator, model = ready.cfg, ready.accelerator, fitted.model
    test_metrics: dict[str, float] = {}
    per_class: dict[str, Any] = {}
    if cfg.evaluation.test:
        cached = _cached_probe_test(ready, model)
        if cached is None:
            test_loader = accelerator.prepare(ready.loader("test", cfg.evaluation.batch_size, shuffle=False))
            cached = ready.evaluator(model, test_loader)
        test_metrics, test_preds, test_labels = cached
        if ready.task.per_class:
            per_class = {"split": "test", **per_class_report(test_preds, test_labels, ready.label_names)}
        accelerator.log({f"test/{k}": v for k, v in test_metrics.items()}, step=fitted.result.state.step)
    after = measure.after_training(
        cfg, ready.modality, ready.processor, model, accelerator, ready.splits, ready.label_names,
        test_metrics.get("accuracy"),  # the shift's clean pass is this test pass: the same rows, the same model
    )
    shift_correct = after["shift"].pop("correct", {}) if "shift" in after else {}
    if cfg.study.per_row and cfg.evaluation.test:  # the same test rows, in one order, for every run of a data set
        after["per_row"] = {
            "test_ids": ready.row_ids.get("test", []),
            "test_correct": study.correct(test_preds, test_labels),
            "shift": shift_correct,
        }
    if ready.task.labels == "transcript" and cfg.asr.extra_splits:  # e.g. noisy test (shift), source probe (forgetting)
        after["extra_splits"] = score_splits(ready, model, list(cfg.asr.extra_splits))
    return Scores(test_metrics, {**ready.measurements, **after}, per_class)


def record_of(ready: Setup, fitted: Fitted, scores: Scores) -> RunRecord:
    """The run record (results.json) of a fitted and scored run."""
    cfg, accelerator, result, probe_result = ready.cfg, ready.accelerator, fitted.result, fitted.probe_result
    record = RunRecord(
        run=RunInfo(
            name=cfg.run_name,
            modality=cfg.modality,
            task=cfg.task,
            method=cfg.method.name,
            model=cfg.model.source,
            backbone=ready.built.candidate,
            dataset=cfg.data.source,
            seed=cfg.training.seed,
            world_size=accelerator.num_processes,
            device=str(accelerator.device),
            mixed_precision=accelerator.mixed_precision,  # what ran ("auto" resolved for this device)
            gradient_checkpointing=is_gradient_checkpointing(fitted.model),  # the model's state, not the config
            started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ready.started)),
            wall_s=round(time.time() - ready.started, 2),
            versions=library_versions(),
        ),
        params=ready.params,
        data=DataInfo(ready.label_names, {name: len(split) for name, split in ready.splits.items()}, len(ready.skipped)),
        train=train_info(result, cfg.training.metric_for_best),
        eval=result.best_eval,
        test=scores.test,
        history=result.state.history,
        per_class=scores.per_class,
        measurements={
            **scores.measurements,
            "study": study.study_section(cfg, ready.row_ids.get("train", []), result, probe_result),
        },
    )
    if probe_result is not None:  # lp_ft: the time and steps of both phases, each phase apart, one history
        record.train = both_phases(probe_result, result, cfg.training.metric_for_best)
        record.history = [
            {"phase": phase, **entry}
            for phase, phase_result in (("probe", probe_result), ("fine_tune", result))
            for entry in phase_result.state.history
        ]
    return record


def save(ready: Setup, fitted: Fitted, scores: Scores) -> dict[str, Any]:
    """adapter/ and model/, then results.json (last: its presence means "finished"); then export and push if asked."""
    cfg, accelerator, run_dir = ready.cfg, ready.accelerator, ready.run_dir
    record = record_of(ready, fitted, scores)
    save_outputs(cfg, accelerator, fitted.model, ready.processor, run_dir, ready.label_names)
    if accelerator.is_main_process:
        write_record(run_dir, record)
        logger.info("done: %s  eval %s  test %s", run_dir, _short(record.eval), _short(record.test))
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes the trackers and, in accelerate 1.x, the process group: after the last barrier
    if cfg.export.enabled and accelerator.is_main_process:
        export_run(run_dir)
    if cfg.push.enabled and accelerator.is_main_process:
        push_run(run_dir, cfg.push)
    return record.to_dict()


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

