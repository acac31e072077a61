"""A probe trained on cached frozen features: the backbone runs once per row, not once per row and epoch.

A linear probe (and LP-FT's probe phase) never changes the backbone, and with its dropout off (``freeze_backbone``)
the backbone maps each row to the same features every epoch. So the head's input is computed once per
(backbone, data, preprocessing, precision), stored with :mod:`hftl.evaluation.feature_cache`, and the head trains on
it through the same Trainer (same optimizer, schedule, batch order, evaluation and checkpoints): the result is the
step-by-step probe's, at the cost of one pass over the data.

What the head sees is captured with a forward pre-hook on the first head module to run, so no architecture's
pooling is re-implemented here. A sequence input (Whisper's projector runs per frame, the mean over frames follows)
is stored as its mean over the sequence: the head modules are linear up to that mean, and mean and affine maps
commute. Before training, the cached path is checked against the model on one batch (the head on the cached
features must give the model's logits); where it does not, or where augmentation is asked for (a new draw every
epoch), the probe runs step by step and the log says why.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from transformers.modeling_outputs import SequenceClassifierOutput

from hftl.evaluation.feature_cache import cache_key, cached_arrays, folder_fingerprint
from hftl.run.training import Trainer, TrainResult

if TYPE_CHECKING:
    from accelerate import Accelerator

    from hftl.config import Config

logger = logging.getLogger("hftl")

SPLITS = ("train", "validation")
CHECK_ATOL = 1e-3  # logits of the cached head vs the model on one batch (fp32; bf16 is compared at its own precision)


def augmentation_settings(cfg: Config) -> list[str]:
    """The augmentation options of the run's modality section that are on (differ from their default 'off')."""
    section = cfg.section(cfg.modality)
    return _augmenting_fields(section, cfg.modality) if section is not None else []


def _augmenting_fields(section: Any, prefix: str, inside_augment: bool = False) -> list[str]:
    """Non-default fields whose help says they augment (or apply in training only); every field of a nested
    augmentation section (``vision.augment``) counts."""
    found = []
    defaults = type(section)()
    for f in dataclasses.fields(section):
        value, default = getattr(section, f.name), getattr(defaults, f.name)
        help_text = str(f.metadata.get("help", "")).lower()
        augments = inside_augment or any(word in help_text for word in ("augment", "training only", "mixup", "cutmix"))
        if dataclasses.is_dataclass(value):
            found += _augmenting_fields(value, f"{prefix}.{f.name}", augments) if augments else []
        elif augments and value != default:
            found.append(f"{prefix}.{f.name}={value}")
    return found


def cache_off_reason(cfg: Config) -> str | None:
    """Why this run's probe must run step by step, or None when the cache applies."""
    if not cfg.training.feature_cache:
        return "training.feature_cache=false"
    augmenting = augmentation_settings(cfg)
    if augmenting:
        return f"augmentation is on ({', '.join(augmenting)}): every epoch draws new inputs"
    return None


class CapturedHead(torch.nn.Module):
    """The head modules of a classifier applied to captured head inputs; its parameters ARE the classifier's."""

    def __init__(self, model: torch.nn.Module, order: list[str], num_labels: int):
        super().__init__()
        self.order = order
        for name in order:  # same attribute names: the Trainer's weight names match the classifier's
            self.add_module(name, getattr(model, name))
        self.num_labels = num_labels

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        x = features
        for name in self.order:
            x = getattr(self, name)(x)
        logits = x.float()
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class _Features(Dataset):
    def __init__(self, features: np.ndarray, labels: np.ndarray):
        self.features, self.labels = torch.from_numpy(features), torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[i], "labels": self.labels[i]}


def _unwrap_peft(model: torch.nn.Module) -> torch.nn.Module:
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model


@torch.no_grad()
def head_inputs(
    model: torch.nn.Module, heads: list[str], loader: DataLoader, autocast
) -> tuple[dict[str, np.ndarray], list[str], torch.Tensor]:
    """Run the model over ``loader`` capturing what its first head module receives.

    Returns:
        ({"features": (n, d) float32 (sequences mean-pooled), "labels": (n,)}, head modules in the order they ran,
        the model's logits on the first batch (for the check)).
    """
    inner = _unwrap_peft(model)
    order: list[str] = []
    captured: list[torch.Tensor] = []

    def pre_hook(name: str):
        def hook(module, args):
            if name not in order:
                order.append(name)
            if order[0] == name:
                x = args[0]
                captured.append((x.float().mean(dim=1) if x.dim() == 3 else x.float()).cpu())

        return hook

    handles = [getattr(inner, h).register_forward_pre_hook(pre_hook(h)) for h in heads]
    was_training = model.training
    model.eval()
    labels, first_logits = [], None
    try:
        for batch in loader:
            labels.append(batch.pop("labels").cpu())
            with autocast():
                logits = model(**batch).logits
            if first_logits is None:
                first_logits = logits.float().cpu()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    arrays = {"features": torch.cat(captured).numpy(), "labels": torch.cat(labels).numpy().astype(np.int64)}
    return arrays, order, first_logits


def _split_key(cfg: Config, split: str, dataset: Any, fingerprint: str | None, heads: list[str], precision: str) -> str | None:
    """Everything the head inputs depend on; None (no disk cache) when the backbone is not a local folder.

    ``fingerprint`` is the raw split's (datasets' hash of its source files and the selections made on them): the
    prepared split's own changes with the tokenizer object's state, so the preprocessing enters as its settings.
    """
    from hftl.run.backbone import variant_key
    from hftl.run.models import resolve_model_source

    try:
        source = resolve_model_source(cfg.model.source)
    except Exception:  # an adapter or a Hub id: computed once for this run, not stored
        return None
    model_files = folder_fingerprint(source)
    if model_files is None or fingerprint is None:
        return None
    section = cfg.section(cfg.modality)
    return cache_key({
        "kind": "probe-head-inputs",
        "model": model_files,
        "backbone": variant_key(cfg),  # the same files cut to k layers or re-initialised give other features
        "revision": cfg.model.revision,
        "data": _data_key(cfg, split),
        "preprocessing": dataclasses.asdict(section) if section is not None else None,
        "split": split,
        "rows": len(dataset),
        "dataset": fingerprint,
        "heads": heads,
        "precision": precision,
    })  # fmt: skip


TRAIN_SUBSET_KEYS = ("shots_per_class", "max_train_samples", "train_fraction", "subset_seed")


def _data_key(cfg: Config, split: str) -> dict[str, Any]:
    """The data settings a split's rows depend on: validation's do not change with the training subset, so every
    seed and size of a study shares its validation features."""
    data = dataclasses.asdict(cfg.data)
    if split != "train":
        for key in TRAIN_SUBSET_KEYS:
            data.pop(key)
    return data


def fit_cached_probe(
    cfg: Config,
    accelerator: Accelerator,
    model: torch.nn.Module,
    heads: list[str],
    prepared: dict[str, Any],
    collate,
    run_dir: Path,
    log_prefix: str = "",
    data_fingerprints: dict[str, str | None] | None = None,
    hooks=(),
) -> TrainResult | None:
    """Train ``model``'s head (backbone frozen, dropout off) on cached head inputs; None when the check fails.

    On return the model's head holds the best weights (the Trainer selects them, as the step-by-step probe would).
    """
    ordered: dict[str, dict[str, np.ndarray]] = {}
    order: list[str] = []
    model_device = next(model.parameters()).device
    for split in SPLITS:
        loader = DataLoader(prepared[split], batch_size=cfg.evaluation.batch_size, collate_fn=_to(collate, model_device))
        check: list[Any] = []

        def compute(split=split, loader=loader, check=check) -> dict[str, np.ndarray]:
            arrays, ran, logits = head_inputs(model, heads, loader, accelerator.autocast)
            check.append((ran, logits))
            return arrays

        fingerprint = (data_fingerprints or {}).get(split)
        key = _split_key(cfg, split, prepared[split], fingerprint, heads, accelerator.mixed_precision)
        ordered[split] = cached_arrays(key, compute)
        if check:
            order = check[0][0]
            if split == "train" and not _head_reproduces(model, order, ordered[split], check[0][1], accelerator):
                return None
    if not order:  # both splits came from the disk cache: the head order from one batch
        one = DataLoader(prepared["validation"], batch_size=2, collate_fn=_to(collate, model_device))
        _, order, logits = head_inputs(model, heads, [next(iter(one))], accelerator.autocast)
        if not _head_reproduces(model, order, {"features": ordered["validation"]["features"][:2]}, logits, accelerator):
            return None
    head = CapturedHead(_unwrap_peft(model), order, len(np.unique(ordered["train"]["labels"])))
    if cfg.method.probe.solver == "logistic":
        result = fit_logistic_head(cfg, head, ordered, _num_labels(model))
        if result is not None:
            return result
    logger.info(
        "probe on cached features: %s rows x %d (head input of %s)",
        {s: len(a["labels"]) for s, a in ordered.items()}, ordered["train"]["features"].shape[1], order[0],
    )  # fmt: skip
    train = DataLoader(_Features(**ordered["train"]), batch_size=cfg.training.batch_size, shuffle=True)
    val = DataLoader(_Features(**ordered["validation"]), batch_size=cfg.evaluation.batch_size)
    trainer = Trainer(cfg, accelerator, head, train, val, run_dir, log_prefix=log_prefix, hooks=hooks)
    result = trainer.fit()  # ends with the best head loaded; the modules are the model's own
    trainer.release()
    return result


def _num_labels(model: torch.nn.Module) -> int:
    return int(_unwrap_peft(model).config.num_labels)


def _head_linears(head: CapturedHead) -> list[torch.nn.Linear]:
    return [m for name in head.order for m in getattr(head, name).modules() if isinstance(m, torch.nn.Linear)]


@torch.no_grad()
def write_linear_head(head: CapturedHead, weight: np.ndarray, bias: np.ndarray) -> bool:
    """Make ``head`` compute ``weight @ x + bias``; False when its modules cannot hold that affine map exactly.

    One Linear takes the map as it is; two (Whisper's projector, then the classifier: linear up to the frame mean)
    take it in the projector's first rows and pass those rows through the classifier (an identity block), which
    needs a projector at least as wide as the number of classes. The result is checked on random inputs.
    """
    linears = _head_linears(head)
    w, b = torch.as_tensor(weight, dtype=torch.float32), torch.as_tensor(bias, dtype=torch.float32)
    classes, width = w.shape
    if len(linears) == 1 and tuple(linears[0].weight.shape) == (classes, width):
        linears[0].weight.copy_(w)
        if linears[0].bias is not None:
            linears[0].bias.copy_(b)
    elif len(linears) == 2 and linears[0].in_features == width and linears[0].out_features >= classes:
        first, second = linears
        first.weight.zero_()
        first.weight[:classes].copy_(w)
        if first.bias is not None:
            first.bias.zero_()
            first.bias[:classes].copy_(b)
        second.weight.zero_()
        second.weight[:, :classes].copy_(torch.eye(classes))
        if second.bias is not None:
            second.bias.zero_()
    else:
        return False
    probe_inputs = torch.randn(4, width, dtype=torch.float32)
    device = linears[0].weight.device
    expected = probe_inputs @ w.T + b
    was_training = head.training
    head.eval()
    got = head(probe_inputs.to(device, linears[0].weight.dtype)).logits.float().cpu()
    head.train(was_training)
    return bool(torch.allclose(got, expected, atol=1e-3 * max(1.0, float(expected.abs().max()))))


def fit_logistic_head(cfg: Config, head: CapturedHead, arrays: dict[str, dict[str, np.ndarray]], num_labels: int) -> TrainResult | None:
    """The head as an L2-swept logistic regression on the cached features (hftl/evaluation/logistic_probe.py);
    None (the loop then trains it) when the head's modules cannot hold a linear map."""
    import time

    from hftl.evaluation.logistic_probe import fit_logistic_probe
    from hftl.run.hooks import TrainerState
    from hftl.run.metrics import compute_metrics

    started = time.perf_counter()
    train, val = arrays["train"], arrays["validation"]
    settings = cfg.method.probe
    probe = fit_logistic_probe(
        train["features"], train["labels"], val["features"], val["labels"], settings.c_grid, num_labels, settings.max_iter
    )
    if not write_linear_head(head, probe.weight, probe.bias):
        logger.warning("probe: the head (%s) is not one affine map; training it with the loop instead", ", ".join(head.order))
        return None
    logits = probe.logits(val["features"])
    metrics = compute_metrics(cfg.evaluation.metrics, logits.argmax(axis=1), val["labels"])
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    metrics["loss"] = float(-log_probs[np.arange(len(val["labels"])), val["labels"]].mean())
    seconds = time.perf_counter() - started
    state = TrainerState(
        step=0, best_metric=metrics.get(cfg.training.metric_for_best), best_step=0, train_seconds=seconds,
        samples_seen=len(train["labels"]), history=[{"step": 0, "epoch": 0, **{f"eval/{k}": v for k, v in metrics.items()}}],
    )  # fmt: skip
    logger.info(
        "probe: logistic regression (L-BFGS) on %d x %d cached features, C=%g chosen on validation (accuracy %.4f; "
        "per C: %s), %d iterations", len(train["labels"]), train["features"].shape[1], probe.c,
        probe.validation_accuracy, probe.scores, probe.iterations,
    )  # fmt: skip
    return TrainResult(
        state=state, best_eval=metrics, total_steps=0,
        selection={"searched": {"l2_C": sorted(probe.scores)}, "chosen": {"l2_C": probe.c}, "metric": "accuracy",
                   "split": "validation", "value": probe.validation_accuracy, "trials": len(probe.scores),
                   "per_trial": {str(c): v for c, v in probe.scores.items()}},
        budget={"solver": "lbfgs", "cap_steps": settings.max_iter, "steps": probe.iterations,
                "stopped": "converged" if probe.converged else "cap"},
    )  # fmt: skip


def _to(collate, device: torch.device):
    def collate_on_device(rows):
        return {k: v.to(device) for k, v in collate(rows).items()}

    return collate_on_device


def _head_reproduces(model, order, arrays, logits, accelerator) -> bool:
    """The head on the first batch's cached inputs gives the model's logits (else the capture misses a step)."""
    head = CapturedHead(_unwrap_peft(model), order, logits.shape[-1])
    n = len(logits)
    features = torch.from_numpy(arrays["features"][:n]).to(next(model.parameters()).device)
    with torch.no_grad(), accelerator.autocast():
        replay = head(features).logits.float().cpu()
    scale = max(1.0, float(logits.abs().max()))
    atol = CHECK_ATOL if accelerator.mixed_precision == "no" else 5e-2
    diff = float((replay - logits).abs().max()) / scale
    if diff > atol:
        logger.warning(
            "probe feature cache off: the head (%s) on captured inputs differs from the model's logits by %.3g; "
            "training step by step", ", ".join(order), diff,
        )  # fmt: skip
        return False
    return True


@torch.no_grad()
def cached_split_scores(
    cfg: Config, accelerator: Accelerator, model: torch.nn.Module, heads: list[str], prepared: Any, collate, split: str,
    metric_names: list[str], fingerprint: str | None = None,
) -> tuple[dict[str, float], np.ndarray, np.ndarray] | None:
    """A frozen-backbone model's (metrics, predictions, labels) on ``split`` from cached head inputs, in the split's order.

    The frozen backbone maps a row to the same head input in every run of one (backbone, data set), so a study's
    seeds and sizes compute their test rows' features once and each run applies its own trained head to them.
    The model's own logits on the split's first rows must equal its head on the cached inputs (which also catches a
    stale cache); None, and the caller runs the model, when they do not or when several processes share the split.
    """
    from hftl.run.metrics import compute_metrics

    if accelerator.num_processes > 1:
        return None
    device = next(model.parameters()).device
    loader = DataLoader(prepared, batch_size=cfg.evaluation.batch_size, collate_fn=_to(collate, device))
    arrays = cached_arrays(
        _split_key(cfg, split, prepared, fingerprint, heads, accelerator.mixed_precision),
        lambda: head_inputs(model, heads, loader, accelerator.autocast)[0],
    )
    first = DataLoader(prepared, batch_size=2, collate_fn=_to(collate, device))
    _, order, logits = head_inputs(model, heads, [next(iter(first))], accelerator.autocast)
    if not _head_reproduces(model, order, arrays, logits, accelerator):
        return None
    head = CapturedHead(_unwrap_peft(model), order, logits.shape[-1]).eval()
    features = torch.from_numpy(arrays["features"])
    with accelerator.autocast():
        out = torch.cat([head(chunk.to(device)).logits.float().cpu() for chunk in features.split(1024)])
    labels = arrays["labels"]
    preds = out.argmax(-1).numpy()
    metrics = compute_metrics(metric_names, preds, labels)
    metrics["loss"] = float(torch.nn.functional.cross_entropy(out, torch.from_numpy(labels)).item())
    logger.info("%s scored from cached head inputs (%d rows x %d)", split, len(labels), features.shape[1])
    return metrics, preds, labels
