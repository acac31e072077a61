"""The head of hftl's own classifiers: dropout and a linear layer on the backbone's pooled embedding."""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput


class EmbeddingClassifierMixin:
    """For a ``PreTrainedModel`` whose backbone returns ``pooler_output``: ``init_head`` in ``__init__``, then
    ``classify(backbone_output, labels)`` in ``forward``."""

    output_class: type = SequenceClassifierOutput

    def init_head(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def classify(self, out: Any, labels: Any = None) -> Any:
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return self.output_class(loss=loss, logits=logits, hidden_states=out.hidden_states)
