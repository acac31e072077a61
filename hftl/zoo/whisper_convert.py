"""Map a CTranslate2 Whisper spec (``WhisperSpec``) onto Hugging Face ``WhisperForConditionalGeneration`` weights."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from hftl.zoo import ZooError
from hftl.zoo.ctranslate2 import CT2Model

# CTranslate2's ActivationType enum value for exact (erf) GELU, which Whisper uses.
CT2_GELU = 3
# The k projections have no bias in Whisper; CTranslate2 stores zeros in the fused bias instead.
MAX_K_BIAS = 1e-6


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _num_layers(ct2: CT2Model, side: str) -> int:
    found = {int(m.group(1)) for v in ct2.variables if (m := re.match(rf"{side}/layer_(\d+)/", v))}
    if found != set(range(len(found))) or not found:
        raise ZooError(f"CTranslate2 {side}: layer indices {sorted(found)} are not 0..N-1")
    return len(found)


def whisper_config_dict(ct2: CT2Model) -> dict[str, Any]:
    """Derive the architecture part of a ``WhisperConfig`` from the variable shapes.

    Raises:
        ZooError: Not a Whisper spec, or flags (activation, pre-norm, embedding scale) that the HF
            model cannot reproduce.
    """
    if ct2.spec != "WhisperSpec":
        raise ZooError(f"expected a CTranslate2 WhisperSpec, got {ct2.spec!r}")
    flags = {"decoder/activation": CT2_GELU, "decoder/pre_norm": 1, "decoder/scale_embeddings": 0}
    for name, want in flags.items():
        if name in ct2 and int(ct2[name]) != want:
            raise ZooError(f"CTranslate2 {name} is {int(ct2[name])}; HF Whisper needs {want}")
    vocab_size, d_model = ct2["decoder/embeddings/weight"].shape
    enc_heads, dec_heads = int(ct2["encoder/num_heads"]), int(ct2["decoder/num_heads"])
    return {
        "vocab_size": int(vocab_size),
        "d_model": int(d_model),
        "num_mel_bins": int(ct2["encoder/conv1/weight"].shape[1]),
        "encoder_layers": _num_layers(ct2, "encoder"),
        "decoder_layers": _num_layers(ct2, "decoder"),
        "encoder_attention_heads": enc_heads,
        "decoder_attention_heads": dec_heads,
        "encoder_ffn_dim": int(ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(ct2["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(ct2["decoder/position_encodings/encodings"].shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
    }


def _linear(ct2: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = _f32(ct2[f"{src}/weight"])
    out[f"{dst}.bias"] = _f32(ct2[f"{src}/bias"])


def _norm(ct2: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = _f32(ct2[f"{src}/gamma"])
    out[f"{dst}.bias"] = _f32(ct2[f"{src}/beta"])


def _split_fused(
    ct2: CT2Model, src: str, dst: str, names: tuple[str, ...], out: dict[str, np.ndarray]
) -> None:
    """Split a fused projection (``q,k,v`` or ``k,v``) along dim 0; drop the all-zero k bias."""
    weights = np.split(_f32(ct2[f"{src}/weight"]), len(names))
    biases = np.split(_f32(ct2[f"{src}/bias"]), len(names))
    for name, weight, bias in zip(names, weights, biases, strict=True):
        out[f"{dst}.{name}_proj.weight"] = weight
        if name == "k":
            if np.abs(bias).max() > MAX_K_BIAS:
                raise ZooError(
                    f"{src}: k bias is not zero (max {np.abs(bias).max():.3g}); HF k_proj has no bias"
                )
        else:
            out[f"{dst}.{name}_proj.bias"] = bias


def whisper_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """Return float32 HF parameter arrays (``model.encoder.*``, ``model.decoder.*``) for a WhisperSpec.

    ``proj_out.weight`` is left out: it is tied to ``model.decoder.embed_tokens.weight``
    (CTranslate2 stores it as an alias of the embeddings).
    """
    config = whisper_config_dict(ct2)
    out: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    _linear(ct2, "encoder/conv1", f"{enc}.conv1", out)
    _linear(ct2, "encoder/conv2", f"{enc}.conv2", out)
    out[f"{enc}.embed_positions.weight"] = _f32(ct2["encoder/position_encodings/encodings"])
    for i in range(config["encoder_layers"]):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        _split_fused(ct2, f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q", "k", "v"), out)
        _linear(ct2, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", out)
        _norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
        _linear(ct2, f"{src}/ffn/linear_0", f"{dst}.fc1", out)
        _linear(ct2, f"{src}/ffn/linear_1", f"{dst}.fc2", out)
        _norm(ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", out)
    _norm(ct2, "encoder/layer_norm", f"{enc}.layer_norm", out)
    out[f"{dec}.embed_tokens.weight"] = _f32(ct2["decoder/embeddings/weight"])
    out[f"{dec}.embed_positions.weight"] = _f32(ct2["decoder/position_encodings/encodings"])
    for i in range(config["decoder_layers"]):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        _split_fused(ct2, f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q", "k", "v"), out)
        _linear(ct2, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", out)
        _norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
        # Cross-attention: linear_0 = q, linear_1 = fused k,v, linear_2 = out.
        _linear(ct2, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj", out)
        _split_fused(ct2, f"{src}/attention/linear_1", f"{dst}.encoder_attn", ("k", "v"), out)
        _linear(ct2, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj", out)
        _norm(ct2, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", out)
        _linear(ct2, f"{src}/ffn/linear_0", f"{dst}.fc1", out)
        _linear(ct2, f"{src}/ffn/linear_1", f"{dst}.fc2", out)
        _norm(ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", out)
    _norm(ct2, "decoder/layer_norm", f"{dec}.layer_norm", out)
    if "decoder/projection/weight" in ct2 and not np.array_equal(
        ct2["decoder/projection/weight"], ct2["decoder/embeddings/weight"]
    ):
        raise ZooError(
            "CTranslate2 decoder/projection/weight differs from the embeddings; HF Whisper ties them"
        )
    return out
