"""EfficientNet-Lite (Tan & Le 2019; the mobile "Lite" variants: no squeeze-excitation, ReLU6, stem and head not scaled)
as a transformers model, so hftl's vision modality loads it through ``AutoModelForImageClassification`` like DINOv2.

Parameter names follow the PyTorch port whose ImageNet weights the zoo converts (``_conv_stem``, ``_blocks.N``,
``_conv_head``), so its state dict loads without renaming. The backbone's depth is counted in stages (7):
``num_hidden_layers = k < 7`` keeps the first k stages and drops the 1x1 head convolution, whose input they no longer
fit, so a truncated model's features are stage k's channels. Features are global-average pooled and returned as one
token, ``(batch, 1, channels)``, so hftl's token pooling (cls / mean) reads them unchanged.

Batch norm: a layer whose weights are frozen (linear probe, LoRA, LP-FT's probe phase) keeps its running statistics
(it stays in eval mode when the model trains), so a frozen backbone is really frozen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutputWithNoAttention

from hftl.models.embedding_classifier import EmbeddingClassifierMixin
from hftl.models.frozen_batch_norm import FrozenBatchNormMixin

# (kernel, stride, expand ratio, output channels, repeats) of EfficientNet-B0's seven stages; Lite scales them.
BASE_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
# variant -> (width, depth, resolution, dropout), as the TensorFlow reference defines them
VARIANTS = {
    "efficientnet-lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet-lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet-lite4": (1.4, 1.8, 300, 0.3),
}


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width`` to a multiple of ``divisor``, never below 90% of the scaled count."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


@dataclass(frozen=True)
class Stage:
    kernel: int
    stride: int
    expand: int
    channels_in: int
    channels_out: int
    repeats: int


def stages(width: float, depth: float) -> list[Stage]:
    """The seven stages of a Lite variant: channels scaled by width, repeats by depth (not the first and last)."""
    out, channels_in = [], STEM_CHANNELS
    for i, (kernel, stride, expand, channels, repeats) in enumerate(BASE_STAGES):
        channels_out = round_channels(channels, width)
        fixed = i in (0, len(BASE_STAGES) - 1)
        out.append(Stage(kernel, stride, expand, channels_in, channels_out, repeats if fixed else math.ceil(depth * repeats)))
        channels_in = channels_out
    return out


class EfficientNetLiteConfig(PretrainedConfig):
    model_type = "efficientnet_lite"

    def __init__(
        self,
        width_coefficient: float = 1.0,
        depth_coefficient: float = 1.0,
        image_size: int = 224,
        dropout_rate: float = 0.2,
        num_hidden_layers: int = len(BASE_STAGES),
        batch_norm_eps: float = 1e-3,
        batch_norm_momentum: float = 0.01,
        tf_padding: bool = True,
        num_channels: int = 3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.width_coefficient = width_coefficient
        self.depth_coefficient = depth_coefficient
        self.image_size = image_size
        self.dropout_rate = dropout_rate
        self.num_hidden_layers = num_hidden_layers  # stages kept, 1..7
        self.batch_norm_eps = batch_norm_eps
        self.batch_norm_momentum = batch_norm_momentum
        self.tf_padding = tf_padding  # TensorFlow's "SAME" padding (asymmetric at stride 2), as the weights were trained
        self.num_channels = num_channels

    @property
    def stages(self) -> list[Stage]:
        return stages(self.width_coefficient, self.depth_coefficient)[: self.num_hidden_layers]

    @property
    def hidden_size(self) -> int:
        """Feature size: the head's 1280 channels, or the last kept stage's when truncated."""
        return HEAD_CHANNELS if self.num_hidden_layers == len(BASE_STAGES) else self.stages[-1].channels_out


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's "SAME": output size ceil(input / stride), extra padding at the end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(nn.functional.pad(x, pads))


def conv(config: EfficientNetLiteConfig, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if config.tf_padding and kernel > 1:
        return SameConv2d(c_in, c_out, kernel, stride, groups=groups, bias=False)
    return nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False)


def batch_norm(config: EfficientNetLiteConfig, channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, config: EfficientNetLiteConfig, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        if expand != 1:
            self._expand_conv = conv(config, c_in, hidden, 1)
            self._bn0 = batch_norm(config, hidden)
        self._depthwise_conv = conv(config, hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = batch_norm(config, hidden)
        self._project_conv = conv(config, hidden, c_out, 1)
        self._bn2 = batch_norm(config, c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = nn.functional.relu6(self._bn0(self._expand_conv(h)))
        h = nn.functional.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.skip else h


class EfficientNetLitePreTrainedModel(FrozenBatchNormMixin, PreTrainedModel):
    config_class = EfficientNetLiteConfig
    base_model_prefix = "efficientnet_lite"
    main_input_name = "pixel_values"

    def _init_weights(self, module: nn.Module) -> None:
        # As the reference: convolutions He-normal (fan out), the classifier uniform, batch norm identity.
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.weight.shape[0])
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class EfficientNetLiteModel(EfficientNetLitePreTrainedModel):
    """The backbone: stem, the kept stages, the head convolution (all seven kept); pooled features as one token."""

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self._conv_stem = conv(config, config.num_channels, STEM_CHANNELS, 3, 2)
        self._bn0 = batch_norm(config, STEM_CHANNELS)
        blocks, self.stage_ends = [], []
        for stage in config.stages:
            for r in range(stage.repeats):
                c_in, stride = (stage.channels_in, stage.stride) if r == 0 else (stage.channels_out, 1)
                blocks.append(MBConvBlock(config, c_in, stage.channels_out, stage.kernel, stride, stage.expand))
            self.stage_ends.append(len(blocks))
        self._blocks = nn.ModuleList(blocks)
        if config.num_hidden_layers == len(BASE_STAGES):
            self._conv_head = conv(config, config.stages[-1].channels_out, HEAD_CHANNELS, 1)
            self._bn1 = batch_norm(config, HEAD_CHANNELS)
        self.post_init()

    def forward(
        self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs
    ) -> BaseModelOutputWithPooling | tuple:
        x = nn.functional.relu6(self._bn0(self._conv_stem(pixel_values)))
        pooled = [x.mean(dim=(2, 3))]
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i + 1 in self.stage_ends:
                pooled.append(x.mean(dim=(2, 3)))
        if hasattr(self, "_conv_head"):
            x = nn.functional.relu6(self._bn1(self._conv_head(x)))
        features = x.mean(dim=(2, 3))
        hidden_states = tuple(p.unsqueeze(1) for p in pooled) if output_hidden_states else None
        if return_dict is False:
            return (features.unsqueeze(1), features, *((hidden_states,) if hidden_states else ()))
        return BaseModelOutputWithPooling(last_hidden_state=features.unsqueeze(1), pooler_output=features, hidden_states=hidden_states)


class EfficientNetLiteForImageClassification(EmbeddingClassifierMixin, EfficientNetLitePreTrainedModel):
    output_class = ImageClassifierOutputWithNoAttention

    def __init__(self, config: EfficientNetLiteConfig):
        super().__init__(config)
        self.efficientnet_lite = EfficientNetLiteModel(config)
        self.init_head(config.hidden_size, config.num_labels, config.dropout_rate)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention:
        return self.classify(self.efficientnet_lite(pixel_values, output_hidden_states=output_hidden_states), labels)
