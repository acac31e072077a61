"""Building the classifier and applying each method: what trains, what is frozen, what is counted."""

from __future__ import annotations

import pytest
import torch

from hftl.config import load_config
from hftl.errors import ModelError
from hftl.modalities import get_modality, registered_modalities
from hftl.run.methods import apply_method
from hftl.run.models import build_model, count_parameters, resolve_model_source

LABELS = ["a", "b", "c", "d"]


def built(tiny_bert, method, *overrides):
    cfg = load_config(None, [f"model.source={tiny_bert}", f"method.name={method}", *overrides])
    modality = get_modality("text")
    b = build_model(cfg, modality, LABELS)
    return cfg, b, apply_method(cfg, modality, b)


def _n(module):
    return sum(p.numel() for p in module.parameters())


def test_every_registered_modality_is_complete():
    for name in registered_modalities():
        modality = get_modality(name)
        assert modality.onnx_task and modality.lora_targets
        assert modality.auto_model() is not None


def test_new_head_is_detected_and_sized(tiny_bert):
    _, b, model = built(tiny_bert, "full")
    assert b.head_modules == ["classifier"]
    assert model.config.num_labels == 4 and model.config.id2label[3] == "d"


def test_full_trains_everything(tiny_bert):
    _, _, model = built(tiny_bert, "full")
    counts = count_parameters(model)
    assert counts["trainable"] == counts["total"] == _n(model)


def test_linear_probe_trains_only_the_head_without_backbone_dropout(tiny_bert):
    _, _, model = built(tiny_bert, "linear_probe")
    counts = count_parameters(model)
    assert counts["trainable"] == _n(model.classifier) == 32 * 4 + 4
    assert counts["total"] == _n(model)
    backbone_dropouts = [m.p for m in model.bert.modules() if isinstance(m, torch.nn.Dropout)]
    assert backbone_dropouts and all(p == 0.0 for p in backbone_dropouts)


def test_lora_trains_adapters_and_head(tiny_bert):
    _, _, model = built(tiny_bert, "lora", "method.lora.r=2")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("classifier" in n for n in trainable)
    assert all("lora_" in n or "classifier" in n for n in trainable)
    # query and value of 2 layers, each A (2 x 32) + B (32 x 2); plus the head (saved copy)
    lora = 2 * 2 * (2 * 32 + 32 * 2)
    assert count_parameters(model)["trainable"] == lora + 32 * 4 + 4


def test_lora_target_override_and_bad_target(tiny_bert):
    _, _, model = built(tiny_bert, "lora", "method.lora.target_modules=[query, key, value]")
    assert any("key.lora_A" in n for n, _ in model.named_parameters())
    with pytest.raises(ModelError, match="target_modules"):
        built(tiny_bert, "lora", "method.lora.target_modules=[no_such_layer]")


def test_scratch_has_same_shape_but_new_weights(tiny_bert):
    _, _, pretrained = built(tiny_bert, "full")
    _, _, scratch = built(tiny_bert, "scratch")
    assert count_parameters(scratch) == count_parameters(pretrained)
    a = pretrained.bert.embeddings.word_embeddings.weight
    b = scratch.bert.embeddings.word_embeddings.weight
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_model_source_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_source(str(tmp_path / "missing"))
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model_source(str(tmp_path))
    assert resolve_model_source("someone/some-model") == "someone/some-model"  # a Hub id, loaded later


@pytest.mark.parametrize("method", ["lora", "scratch"])  # from_pretrained and from_config
def test_attn_implementation_picks_the_attention_kernel_and_keeps_the_function(tiny_bert, method):
    from transformers.models.bert.modeling_bert import BertSdpaSelfAttention, BertSelfAttention

    kernels = {}
    logits = {}
    for choice in ("sdpa", "eager"):
        torch.manual_seed(0)  # the new head and LoRA's matrices draw from torch's RNG: the same weights for both
        _, b, model = built(tiny_bert, method, f"model.attn_implementation={choice}", "training.seed=3")
        kernels[choice] = type(model.get_submodule("bert.encoder.layer.0.attention.self") if method == "scratch"
                               else b.model.bert.encoder.layer[0].attention.self)  # fmt: skip
        model.eval()
        ids = torch.randint(5, 40, (2, 12), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids)
        mask[1, 8:] = 0  # a padded row: the mask takes each kernel's own path
        with torch.no_grad():
            logits[choice] = model(input_ids=ids, attention_mask=mask).logits
    assert kernels == {"sdpa": BertSdpaSelfAttention, "eager": BertSelfAttention}
    assert torch.allclose(logits["sdpa"], logits["eager"], atol=1e-5)


def test_attn_implementation_rejects_unknown_kernels():
    from hftl.errors import ConfigError

    with pytest.raises(ConfigError, match="attn_implementation"):
        load_config(None, ["model.attn_implementation=flash"])
