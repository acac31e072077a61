"""Everything that differs by modality lives behind one interface, one module per modality.

A modality says how raw inputs become model inputs (processor, preprocessing, collator), which transformers
Auto class builds its classifier, which ONNX task exports it, and which modules LoRA adapts by default.
Modules register themselves at definition (``register_modality(TextModality())`` at the end of ``text.py``);
the training loop, export and CLI only ever talk to this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset

    from hftl.augment import AugmentRng
    from hftl.config import Config


class Modality:
    """Interface of one modality. Subclasses set the class attributes and implement the methods."""

    name: str
    onnx_task: str  # optimum's task name for the exported classifier
    auto_model_name: str  # transformers Auto class for the classifier, e.g. AutoModelForSequenceClassification
    lora_targets: dict[str, list[str]]  # model_type -> module names LoRA adapts by default
    pooling: str  # how a backbone's token states become one feature vector: "mean" or "cls"
    default_input_column: str  # the input column hftl's loaders give this modality (zoo sets, folders)
    processor_class_name: str = "AutoProcessor"  # what a model card's snippet loads the saved processor with
    auto_peft_model_name: str = "AutoPeftModel"  # PEFT's Auto class that loads a pushed adapter with its base
    # inputs are files with these suffixes (images, audio clips); empty: inputs are texts
    file_suffixes: frozenset[str] = frozenset()
    sample_file: str | None = None  # a file name a request would upload (None: inputs are JSON strings)
    upload_types: str | None = None  # MIME types a served page's file picker accepts, e.g. "image/*" (files only)
    # (data source, input column, label column) of the held-out task whose k-NN accuracy measures forgetting;
    # None: the modality measures forgetting its own way (``forgetting``) or not at all
    forgetting_probe: tuple[str, str, str] | None = None
    # inputs are speech: forgetting is then the backbone's own speech recognition (WER; Whisper) on synthetic speech
    speech: bool = False
    # this modality's own settings: a dataclass the run config carries under the modality's name (YAML ``text:``,
    # ``cfg.text``; hftl/config asks this table, so a new modality brings its section without config changing)
    config_section: type | None = None

    @property
    def reads_files(self) -> bool:
        """Inputs are files (paths, uploads), not texts."""
        return bool(self.file_suffixes)

    def auto_model(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_model_name)

    def load_processor(self, source: str, cfg: Config) -> Any:
        """The tokenizer / image processor / feature extractor stored beside the model."""
        raise NotImplementedError

    def prepare(
        self, ds: Dataset, processor: Any, cfg: Config, train: bool, augment_rng: AugmentRng | None = None
    ) -> Dataset:
        """Turn a split with (input_column, label_column) into model inputs + ``labels``.

        A training split is augmented (when configured) with draws from ``augment_rng``, per row and epoch.
        """
        raise NotImplementedError

    def check_input(self, value: Any, cfg: Config) -> None:
        """Raise DataError when one raw input (as the data set stores it) cannot be used; decodes it to find out."""
        raise NotImplementedError

    def check_served_input(self, value: Any, limits: Any) -> Any:
        """One input of a served request, checked before any decoding (files by their header only); returns what
        ``encode`` takes. Texts arrive as ``str`` (JSON strings), files (``reads_files``) as ``bytes``.

        ``limits`` is hftl.serve's ``Limits`` (max_text_chars, max_image_pixels, max_audio_seconds, ...).

        Raises:
            InputTooLarge: past a limit; the message names the limit and its ``hftl serve`` option.
            DataError: the input is empty or unreadable.
        """
        raise NotImplementedError

    def collator(
        self, processor: Any, cfg: Config, train: bool = False, augment_rng: AugmentRng | None = None
    ) -> Callable[[list[dict]], dict]:
        """Batch prepared rows into tensors; the training collator may mix rows (then adds ``mix_labels``, ``mix_weight``)."""
        raise NotImplementedError

    def encode(self, processor: Any, cfg: Config, inputs: list[Any]) -> dict[str, np.ndarray]:
        """Raw inputs (strings, image paths, audio paths) -> fixed-shape numpy model inputs (export, predict)."""
        raise NotImplementedError

    def adapt_model(self, model: Any, cfg: Config) -> None:
        """Fit a freshly loaded model to the run's input settings, in place (e.g. cut Whisper's encoder). Default: no-op."""

    def shift_variants(self, split: Dataset, cfg: Config, processor: Any, seed: int) -> dict[str, Dataset]:
        """Shifted copies of a raw test split (same columns), by variant name; row i of each draws from ``seed``."""
        raise ValueError(f"no shifted test sets are defined for modality {self.name!r}; set evaluation.shift=false")

    def card_base_kwargs(self, config: dict[str, Any]) -> list[str]:
        """Snippet lines of base-model settings the run changed besides the head (e.g. Whisper's encoder length)."""
        return []

    def card_onnx_inputs(self, config: dict[str, Any]) -> tuple[str, str]:
        """For an ONNX export's card: (a Python literal of example inputs for ``hftl.deploy.export.predict``, what the
        exported graphs take as input)."""
        return '[...]', "the saved processor's output"

    def card_example(self, config: dict[str, Any]) -> list[str]:
        """Lines of Python for a model card's snippet that set ``inputs`` from ``processor`` (runnable as they stand)."""
        return ['inputs = processor(..., return_tensors="pt")  # your inputs']


_REGISTRY: dict[str, Modality] = {}


def register_modality(modality: Modality) -> Modality:
    if modality.name in _REGISTRY:
        raise ValueError(f"modality {modality.name!r} is registered twice")
    _REGISTRY[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    if name not in _REGISTRY:
        raise KeyError(f"unknown modality {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def registered_modalities() -> list[str]:
    """Names in registration order (text, vision, audio, then any registered later): tables and plots follow it."""
    return list(_REGISTRY)


# Each registers itself; this order is the modalities' order everywhere (config sections, plots).
from hftl.modalities import text  # noqa: E402,F401,I001
from hftl.modalities import vision  # noqa: E402,F401,I001
from hftl.modalities import audio  # noqa: E402,F401,I001
