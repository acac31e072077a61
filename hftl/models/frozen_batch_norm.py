"""Batch norm that stays frozen with its weights: a frozen backbone (linear probe, LoRA, LP-FT's probe phase) must
not move its running statistics either, or it is not frozen at all."""

from __future__ import annotations

from torch import nn


class FrozenBatchNormMixin:
    """For a ``PreTrainedModel`` with batch norm: ``train()`` leaves a batch-norm layer whose weights are frozen in
    eval mode, so training the rest neither updates its statistics nor normalises with batch statistics."""

    def train(self, mode: bool = True):
        super().train(mode)  # type: ignore[misc]
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.weight.requires_grad:
                module.eval()
        return self
