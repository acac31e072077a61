"""Tiny randomly initialised models built in code, saved as local Hugging Face folders for fast tests."""

from __future__ import annotations

from pathlib import Path

# fmt: off
_WORDS = [
    "the", "a", "an", "is", "was", "and", "or", "of", "to", "in", "on", "for", "with", "good", "bad",
    "great", "awful", "movie", "film", "plot", "actor", "music", "sport", "news", "money", "market",
    "team", "game", "win", "lose", "play", "song", "love", "hate", "happy", "sad", "fast", "slow", "new",
    "old", "big", "small", "very", "not", "this", "that", "it",
]
# fmt: on


def _label_config(num_labels: int) -> dict:
    """Config keys for a classification head whose labels are named ``label_0`` ..."""
    id2label = {i: f"label_{i}" for i in range(num_labels)}
    return {"num_labels": num_labels, "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def tiny_text_model(path: Path, num_labels: int = 3) -> Path:
    """Save a tiny random BERT sequence classifier plus a matching fast tokenizer into ``path``.

    Args:
        path: Folder to create (parents included); reused if it exists.
        num_labels: Size of the classification head; labels are named ``label_0`` ...

    Returns:
        ``path``, ready for ``from_pretrained`` and for ``main_export``.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)

    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        **_label_config(num_labels),
    )
    # Fixed seed: tests compare backends on this model, so it must be the same model every run.
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_vision_model(path: Path, num_labels: int = 3, image_size: int = 28) -> Path:
    """Save a tiny random DINOv2 image classifier plus a matching image processor into ``path``.

    Args:
        path: Folder to create (parents included); reused if it exists.
        num_labels: Size of the classification head; labels are named ``label_0`` ...
        image_size: Side the processor crops to; a multiple of the patch size (7) keeps every pixel in a patch.

    Returns:
        ``path``, ready for ``from_pretrained`` and for ``main_export``.
    """
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2ForImageClassification

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=7,
        image_size=image_size,
        **_label_config(num_labels),
    )
    torch.manual_seed(0)  # the same model every run: tests compare backends on it
    Dinov2ForImageClassification(config).eval().save_pretrained(path)
    BitImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
    ).save_pretrained(path)
    return path


def _tiny_whisper_config(**settings):
    """The tiny Whisper both audio test models share: 2 encoder layers, 1 decoder layer, width 32."""
    from transformers import WhisperConfig

    return WhisperConfig(
        d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=37, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=37, classifier_proj_size=16,
        init_std=0.3,  # a random encoder with the default 0.02 maps every input to nearly the same vector
        **settings,
    )  # fmt: skip


def tiny_audio_model(path: Path, num_labels: int = 3, clip_seconds: int = 1) -> Path:
    """Save a tiny random Whisper audio classifier for ``clip_seconds`` clips plus its feature extractor into ``path``.

    Args:
        path: Folder to create (parents included); reused if it exists.
        num_labels: Size of the classification head; labels are named ``label_0`` ...
        clip_seconds: Whole seconds of audio the encoder takes (50 positions per second).

    Returns:
        ``path``, ready for ``from_pretrained`` and for ``main_export``.
    """
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForAudioClassification

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = _tiny_whisper_config(
        vocab_size=64, num_mel_bins=16, max_source_positions=50 * clip_seconds, max_target_positions=32,
        **_label_config(num_labels),
    )  # fmt: skip
    torch.manual_seed(0)  # the same model every run: tests compare backends on it
    WhisperForAudioClassification(config).eval().save_pretrained(path)
    WhisperFeatureExtractor(feature_size=16, sampling_rate=16_000, chunk_length=clip_seconds).save_pretrained(path)
    return path


def tiny_asr_model(path: Path, tokenizer_from: Path) -> Path:
    """Save a tiny random Whisper speech recogniser (encoder AND decoder) with a real Whisper tokenizer into ``path``.

    The encoder has Whisper's full 30-s position table (1500), as a real checkpoint does, so an audio classification run
    cuts it to its clip length and forgetting extends it again; the decoder makes the WER path of forgetting reachable.

    Args:
        path: Folder to create (parents included); reused if it exists.
        tokenizer_from: A Whisper folder whose tokenizer, generation config and special tokens are copied (the zoo's).
    """
    import shutil

    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json",
                 "tokenizer.json", "generation_config.json"):  # fmt: skip
        if (Path(tokenizer_from) / name).exists():
            shutil.copy(Path(tokenizer_from) / name, path / name)
    tokenizer = WhisperTokenizer.from_pretrained(path)
    source = WhisperConfig.from_pretrained(tokenizer_from)
    config = _tiny_whisper_config(
        vocab_size=source.vocab_size,
        num_mel_bins=source.num_mel_bins,
        max_source_positions=1500,
        max_target_positions=128,
        decoder_start_token_id=source.decoder_start_token_id,
        pad_token_id=source.pad_token_id,
        bos_token_id=source.bos_token_id,
        eos_token_id=source.eos_token_id,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    assert len(tokenizer) <= config.vocab_size
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).eval().save_pretrained(path)
    WhisperFeatureExtractor(feature_size=source.num_mel_bins, sampling_rate=16_000).save_pretrained(path)
    return path
