"""Text classification: tokenizer, pre-tokenised splits with dynamic padding, BERT-family LoRA targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hftl.augment import ROW_COLUMN, AugmentRng, with_row_ids
from hftl.augment import text as aug
from hftl.errors import ConfigError, DataError, InputTooLarge
from hftl.modalities import Modality, register_modality, shifts

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset

    from hftl.config import Config


@dataclass
class TextConfig:
    max_length: int = field(default=128, metadata={"help": "tokens per input; longer inputs are truncated"})
    word_dropout: float = field(
        default=0.0, metadata={"help": "training only: drop each word with this probability"}
    )
    word_swap: float = field(
        default=0.0,
        metadata={"help": "training only: swap each word with its neighbour with this probability"},
    )

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ConfigError(f"text.max_length must be >= 8, got {self.max_length}")
        for key in ("word_dropout", "word_swap"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"text.{key} must be in [0, 1), got {getattr(self, key)}")

    @property
    def augments(self) -> bool:
        return self.word_dropout > 0.0 or self.word_swap > 0.0


def text_variants(split: Dataset, cfg: Config) -> dict[str, Dataset]:
    column = cfg.data.input_column
    return {"first_sentence": shifts.replace_column(split, column, [shifts.first_sentence(t) for t in split[column]])}


class TextModality(Modality):
    name = "text"
    config_section = TextConfig
    onnx_task = "text-classification"
    auto_model_name = "AutoModelForSequenceClassification"
    pooling = "mean"
    default_input_column = "text"
    processor_class_name = "AutoTokenizer"
    auto_peft_model_name = "AutoPeftModelForSequenceClassification"
    forgetting_probe = ("zoo:fortunes", "text", "label")
    lora_targets = {
        "bert": ["query", "value"],
        "roberta": ["query", "value"],
        "xlm-roberta": ["query", "value"],
        "electra": ["query", "value"],
        "distilbert": ["q_lin", "v_lin"],
        "deberta-v2": ["query_proj", "value_proj"],
    }

    def load_processor(self, source: str, cfg: Config) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(
            source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
        )

    def card_example(self, config: dict[str, Any]) -> list[str]:
        max_length = (config.get("text") or {}).get("max_length", 128)
        return [f'inputs = processor(["A text to classify."], truncation=True, max_length={max_length}, return_tensors="pt")']

    def card_onnx_inputs(self, config: dict[str, Any]) -> tuple[str, str]:
        max_length = (config.get("text") or {}).get("max_length", 128)
        return '["A text to classify."]', f"the tokenizer's output padded to `max_length={max_length}`"

    def shift_variants(self, split: Dataset, cfg: Config, processor: Any, seed: int) -> dict[str, Dataset]:
        return text_variants(split, cfg)

    def check_served_input(self, value: Any, limits: Any) -> str:
        if not isinstance(value, str):
            raise DataError(f"expected a text (JSON string), got {type(value).__name__}")
        if not value.strip():
            raise DataError("empty text")
        if len(value) > limits.max_text_chars:
            raise InputTooLarge(
                f"text of {len(value)} characters; the limit is {limits.max_text_chars} (--max-text-chars)"
            )
        return value

    def check_input(self, value: Any, cfg: Config) -> None:
        if not isinstance(value, str):
            raise DataError(f"expected text, got {type(value).__name__} {value!r}; fix the row or remove it")
        if not value.strip():
            raise DataError("empty text; fill it in or remove the row")

    def prepare(
        self, ds: Dataset, processor: Any, cfg: Config, train: bool, augment_rng: AugmentRng | None = None
    ) -> Dataset:
        column, label = cfg.data.input_column, cfg.data.label_column
        for row, text in enumerate(ds[column]):
            if not isinstance(text, str):
                raise DataError(
                    f"column '{column}' row {row}: expected text, got {type(text).__name__} {text!r}"
                )

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            out = processor(batch[column], truncation=True, max_length=cfg.text.max_length)
            out["labels"] = batch[label]
            return out

        if not (train and cfg.text.augments):
            # Pre-tokenised once (datasets caches it); padding happens per batch in the collator.
            return ds.map(tokenize, batched=True, remove_columns=ds.column_names, desc="tokenize")
        rngs = augment_rng or AugmentRng(cfg.training.seed)

        def augment(text: str, rng: np.random.Generator) -> str:
            return aug.word_swap(aug.word_dropout(text, cfg.text.word_dropout, rng), cfg.text.word_swap, rng)

        def augment_then_tokenize(batch: dict[str, list]) -> dict[str, list]:
            rows = batch[ROW_COLUMN]
            texts = [augment(t, rngs.for_row(r)) for t, r in zip(batch[column], rows, strict=True)]
            return tokenize({column: texts, label: batch[label]})

        # Augmented text differs every epoch, so it is tokenised on the fly.
        return with_row_ids(ds).with_transform(augment_then_tokenize)

    def collator(self, processor: Any, cfg: Config, train: bool = False, augment_rng: AugmentRng | None = None):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(processor, pad_to_multiple_of=8)

    def encode(self, processor: Any, cfg: Config, inputs: list[Any]) -> dict[str, np.ndarray]:
        # Fixed length so every batch of the exported graph sees the same shapes as the parity check.
        encoded = processor(
            [str(x) for x in inputs],
            padding="max_length",
            truncation=True,
            max_length=cfg.text.max_length,
            return_tensors="np",
        )
        return {k: v.astype("int64") for k, v in encoded.items()}


register_modality(TextModality())
