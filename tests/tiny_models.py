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

    id2label = {i: f"label_{i}" for i in range(num_labels)}
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=num_labels,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    # Fixed seed: tests compare backends on this model, so it must be the same model every run.
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
