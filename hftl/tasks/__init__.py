"""The task axis: what a model outputs, beside the modality axis (what it reads) and the method axis (how it adapts).

A ``Task`` says which model class a run builds (given the modality), how labels are made and batched, and how a
batch is evaluated: classification = argmax + accuracy/F1 (as hftl always did); speech_recognition = generated
transcripts + WER/CER. The loop, the recipe, the record and the run directory only talk to this interface.

The names are also the choices of the config key ``task`` (``hftl.config.TASKS``): the config layer sits below this
one, so it keeps the bare names and this module checks at import that the two agree (as the method registry does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hftl.config import TASKS as CONFIG_TASK_NAMES
from hftl.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from accelerate import Accelerator
    from datasets import Dataset
    from torch.utils.data import DataLoader

    from hftl.augment import AugmentRng
    from hftl.config import Config
    from hftl.modalities import Modality

# (model, prepared loader) -> (metrics incl. "loss", predictions, references) over every sample once
Evaluator = Callable[["torch.nn.Module", "DataLoader"], tuple[dict[str, float], "np.ndarray", "np.ndarray"]]


class Task:
    """Interface of one task. Subclasses set the class attributes and implement the methods."""

    name: str
    labels: str  # what the label column holds: "class" (ClassLabel ids) or "transcript" (text)
    per_class: bool = False  # the test split gets a per-class report and confusion matrix
    new_head: bool = True  # the run puts a freshly initialised head on the backbone (its label count)

    def auto_model(self, modality: Modality) -> Any:
        """The transformers class the run builds (``from_pretrained`` / ``from_config``)."""
        raise NotImplementedError

    def label_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        """Keyword arguments of ``from_pretrained`` that size the output (a classifier's label count)."""
        return {}

    def lora_targets(self, model_type: str | None) -> list[str] | None:
        """Module names LoRA adapts by default for this task, or None: the modality's choice."""
        return None

    def adapt_method(self, model: torch.nn.Module, cfg: Config) -> None:
        """What the task changes on the model once the method is applied (e.g. freeze a part), in place. Default: nothing."""

    def load_processor(self, modality: Modality, source: str, cfg: Config) -> Any:
        return modality.load_processor(source, cfg)

    def prepare(
        self, modality: Modality, ds: Dataset, processor: Any, cfg: Config, train: bool, augment_rng: AugmentRng | None
    ) -> Dataset:
        return modality.prepare(ds, processor, cfg, train=train, augment_rng=augment_rng)

    def collator(
        self, modality: Modality, processor: Any, cfg: Config, train: bool = False, augment_rng: AugmentRng | None = None
    ) -> Callable[[list[dict]], dict]:
        return modality.collator(processor, cfg, train=train, augment_rng=augment_rng)

    def evaluator(self, cfg: Config, accelerator: Accelerator, processor: Any) -> Evaluator:
        """A function scoring a model on a prepared loader, every sample counted once across processes."""
        raise NotImplementedError


_REGISTRY: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _REGISTRY:
        raise ValueError(f"task {task.name!r} is registered twice")
    _REGISTRY[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in _REGISTRY:
        raise ConfigError(f"task: unknown task {name!r}; choose from {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def task_names() -> list[str]:
    return sorted(_REGISTRY)


from hftl.tasks import classification, speech_recognition  # noqa: E402,F401  (each registers itself)

if set(_REGISTRY) != set(CONFIG_TASK_NAMES):
    raise ImportError(f"hftl.config.TASKS {sorted(CONFIG_TASK_NAMES)} != registered tasks {sorted(_REGISTRY)}")
