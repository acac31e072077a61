"""freeze_backbone turns every kind of backbone dropout off (and unfreeze turns it back on)."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

from hftl.run.freezing import freeze_backbone, unfreeze


def _bert(attn_implementation: str) -> BertForSequenceClassification:
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5, num_labels=3,
                        attn_implementation=attn_implementation)  # fmt: skip
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def _two_training_forwards(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    model.train()
    ids = torch.randint(0, 50, (4, 12))
    with torch.no_grad():
        return model(input_ids=ids).logits, model(input_ids=ids).logits


def test_a_frozen_backbone_is_deterministic_in_training_mode_with_sdpa_and_eager_attention():
    """BERT's SDPA attention reads its dropout from a float (dropout_prob), not an nn.Dropout: it must go off too,
    or a step-by-step probe trains on noisier features than the cached probe's (which run in evaluation mode)."""
    for attn in ("sdpa", "eager"):
        model = _bert(attn)
        rates = freeze_backbone(model, ["classifier"])
        first, second = _two_training_forwards(model)
        torch.testing.assert_close(first, second, rtol=0, atol=0)
        if attn == "sdpa":
            assert rates["bert.encoder.layer.0.attention.self.dropout_prob"] == 0.5

        unfreeze(model, rates)  # the backbone's dropout is back, float attributes included
        assert model.bert.encoder.layer[0].attention.self.dropout.p == 0.5
        if attn == "sdpa":
            assert model.bert.encoder.layer[0].attention.self.dropout_prob == 0.5
        first, second = _two_training_forwards(model)
        assert not torch.equal(first, second)


def test_the_head_keeps_its_dropout():
    model = _bert("sdpa")
    freeze_backbone(model, ["classifier", "dropout"])  # a head that names its own dropout keeps it
    assert model.dropout.p == 0.5 and model.bert.pooler is not None
    assert model.bert.embeddings.dropout.p == 0.0
