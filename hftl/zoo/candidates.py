"""Candidate backbones named in one string: a model source, optionally cut to its first k layers and/or re-initialised.

A transfer study compares backbones; besides independent pretrained models, the same model cut to its first k
transformer layers and the same architecture with random weights are candidates too. They are named by suffixes on
the model source, so a compare spec lists them beside the others and each becomes ordinary run config keys::

    zoo:minilm-l6              the pretrained backbone (model.keep_layers: null, model.init: pretrained)
    zoo:minilm-l6@L3           its first 3 transformer layers, pretrained weights (model.keep_layers: 3)
    zoo:minilm-l6@random       the same architecture, random weights (model.init: random)
    zoo:minilm-l6@L3@random    both

The suffixes work on any source (zoo:NAME, Hub id, folder); ``model.keep_layers`` / ``model.init`` say the same in a
config. Random init here is a property of the backbone, usable under every method (a linear probe on random features,
LoRA on a random backbone); the ``scratch`` method is full fine-tuning of such a backbone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from hftl.errors import ConfigError

Init = Literal["pretrained", "random"]
INITS: tuple[str, ...] = ("pretrained", "random")
_SUFFIX = re.compile(r"@(L(?P<layers>\d+)|(?P<random>random))$")


@dataclass(frozen=True)
class Candidate:
    """A model source with its depth cut and initialisation."""

    source: str  # the model source without suffixes (zoo:NAME, Hub id or folder)
    keep_layers: int | None = None  # keep the first k transformer layers; None: all
    init: Init = "pretrained"

    @property
    def name(self) -> str:
        """The candidate's name: the source without ``zoo:``, with its suffixes (``minilm-l6@L3@random``)."""
        return self.source.removeprefix("zoo:") + self.suffix

    @property
    def suffix(self) -> str:
        return (f"@L{self.keep_layers}" if self.keep_layers is not None else "") + ("@random" if self.init == "random" else "")


def parse_candidate(source: str) -> Candidate:
    """Split ``SOURCE[@Lk][@random]`` into the source and its variant.

    Raises:
        ConfigError: a suffix is repeated, ``@L0``, or an ``@...`` suffix that is neither ``@Lk`` nor ``@random``
            on a zoo source (where no folder name can explain it).
    """
    base, layers, init = source, None, "pretrained"
    while match := _SUFFIX.search(base):
        if match["random"]:
            if init == "random":
                raise ConfigError(f"model.source={source}: @random given twice")
            init = "random"
        else:
            if layers is not None:
                raise ConfigError(f"model.source={source}: two @L suffixes")
            layers = int(match["layers"])
            if layers < 1:
                raise ConfigError(f"model.source={source}: @L{layers} keeps no layer; use @L1 or more")
        base = base[: match.start()]
    if base.startswith("zoo:") and "@" in base:
        raise ConfigError(
            f"model.source={source}: unknown suffix {base[base.index('@'):]!r}; "
            "candidates are zoo:NAME, zoo:NAME@Lk (first k layers), zoo:NAME@random, zoo:NAME@Lk@random"
        )
    return Candidate(base, layers, init)  # type: ignore[arg-type]
