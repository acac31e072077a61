"""Speech recognition: audio in, a transcript out (``AutoModelForSpeechSeq2Seq``: Whisper).

Labels are the transcripts tokenised as the decoder reads them: Whisper's tokenizer writes its prompt
(``<|startoftranscript|>`` [language, task] ``<|notimestamps|>``) before the words and ``<|endoftext|>`` after; the
model prepends the decoder start token itself when it shifts the labels right, so the collator drops it from the
labels, and pads them with -100 (ignored by the loss). Evaluation generates transcripts (greedy, or beam search with
``asr.num_beams``), gathers the decoded strings of every process with ``gather_for_metrics`` (which drops the
repeated samples of an uneven last batch) and scores corpus WER/CER with hftl's normalisation (``run.metrics.transcripts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hftl.run.metrics.transcripts import transcript_scores
from hftl.tasks import Evaluator, Task, register_task

if TYPE_CHECKING:
    from accelerate import Accelerator
    from datasets import Dataset
    from torch.utils.data import DataLoader

    from hftl.augment import AugmentRng
    from hftl.config import Config
    from hftl.modalities import Modality

IGNORE_INDEX = -100  # label positions the loss skips (padding)
# LoRA's default targets: every attention projection (encoder self-attention; decoder self- and cross-attention).
LORA_TARGETS = {"whisper": ["q_proj", "k_proj", "v_proj", "out_proj"]}


def decoder_start_id(tokenizer: Any) -> int | None:
    """The token the model puts before the labels itself (Whisper: ``<|startoftranscript|>``)."""
    prefix = getattr(tokenizer, "prefix_tokens", None)
    return prefix[0] if prefix else None


def label_ids(tokenizer: Any, transcripts: list[str]) -> torch.Tensor:
    """Token ids of the transcripts as labels: prompt without the decoder start token, padding = -100."""
    ids = tokenizer(list(transcripts)).input_ids
    start = decoder_start_id(tokenizer)
    if start is not None and all(row and row[0] == start for row in ids):
        ids = [row[1:] for row in ids]
    width = max(len(row) for row in ids)
    out = torch.full((len(ids), width), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def generate(model: torch.nn.Module, features: torch.Tensor, num_beams: int, max_new_tokens: int) -> torch.Tensor:
    """Transcript token ids (the generation config's prompt included; decode with skip_special_tokens)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # generate() warns about defaults the checkpoint's generation config sets on purpose
    try:
        return model.generate(input_features=features, do_sample=False, num_beams=num_beams, max_new_tokens=max_new_tokens)
    finally:
        hf_logging.set_verbosity(level)


def evaluate_transcripts(
    model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, tokenizer: Any, metric_names: list[str],
    num_beams: int = 1, max_new_tokens: int = 96,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """WER/CER of generated transcripts (+ mean token loss) over a prepared loader; every sample counted once.

    Returns (metrics, hypotheses, references) with the texts as numpy object arrays, in loader order.
    """
    model.eval()
    generator = accelerator.unwrap_model(model)  # generate() is not part of a DDP wrapper's forward
    hyps: list[str] = []
    refs: list[str] = []
    token_loss, token_count = [], []
    with torch.no_grad():
        for batch in loader:
            labels = batch["labels"]
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            logits = model(**inputs, labels=labels).logits.float()
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
            ).view(labels.shape)
            ids = generate(generator, next(iter(inputs.values())), num_beams, max_new_tokens)
            texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
            references = tokenizer.batch_decode(labels.masked_fill(labels == IGNORE_INDEX, tokenizer.pad_token_id),
                                                skip_special_tokens=True)  # fmt: skip
            hyps += accelerator.gather_for_metrics([t.strip() for t in texts], use_gather_object=True)
            refs += accelerator.gather_for_metrics([r.strip() for r in references], use_gather_object=True)
            sums, counts = accelerator.gather_for_metrics((loss.sum(1), (labels != IGNORE_INDEX).sum(1)))
            token_loss.append(sums.cpu())
            token_count.append(counts.cpu())
    scores = transcript_scores(refs, hyps)
    metrics = {name: scores[name] for name in metric_names}
    metrics["loss"] = float(torch.cat(token_loss).sum() / torch.cat(token_count).sum().clamp(min=1))
    return metrics, np.asarray(hyps, dtype=object), np.asarray(refs, dtype=object)


class SpeechRecognition(Task):
    name = "speech_recognition"
    labels = "transcript"
    new_head = False

    def auto_model(self, modality: Modality) -> Any:
        from transformers import AutoModelForSpeechSeq2Seq

        return AutoModelForSpeechSeq2Seq

    def lora_targets(self, model_type: str | None) -> list[str] | None:
        return LORA_TARGETS.get(model_type)

    def adapt_method(self, model: torch.nn.Module, cfg: Config) -> None:
        """asr.freeze_encoder: every encoder weight (LoRA's included) stops training; the decoder alone adapts."""
        if not cfg.asr.freeze_encoder:
            return
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        encoder = {id(p) for p in base.get_encoder().parameters()}
        for param in model.parameters():
            if id(param) in encoder:
                param.requires_grad = False

    def load_processor(self, modality: Modality, source: str, cfg: Config) -> Any:
        """The checkpoint's processor (tokenizer + feature extractor), the feature extractor fitted to the clips."""
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(
            source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
        )
        processor.feature_extractor = modality.load_processor(source, cfg)  # e.g. Whisper's cut to audio.clip_seconds
        return processor

    def prepare(
        self, modality: Modality, ds: Dataset, processor: Any, cfg: Config, train: bool, augment_rng: AugmentRng | None
    ) -> Dataset:
        # The audio side (decoding, augmentation, features) is the modality's; the transcript passes through as labels.
        return modality.prepare(ds, processor.feature_extractor, cfg, train=train, augment_rng=augment_rng)

    def collator(
        self, modality: Modality, processor: Any, cfg: Config, train: bool = False, augment_rng: AugmentRng | None = None
    ):
        key = processor.feature_extractor.model_input_names[0]
        tokenizer = processor.tokenizer

        def collate(rows: list[dict]) -> dict[str, Any]:
            return {
                key: torch.from_numpy(np.stack([np.asarray(r[key], dtype=np.float32) for r in rows])),
                "labels": label_ids(tokenizer, [r["labels"] for r in rows]),
            }

        return collate

    def evaluator(self, cfg: Config, accelerator: Accelerator, processor: Any) -> Evaluator:
        asr = cfg.asr
        return lambda model, loader: evaluate_transcripts(
            model, loader, accelerator, processor.tokenizer, cfg.evaluation.metrics, asr.num_beams, asr.max_new_tokens
        )


register_task(SpeechRecognition())
