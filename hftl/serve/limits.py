"""Per-request checks run before any decoding work: how many inputs (413), and each input as its modality checks it
(``Modality.check_served_input``: size limits 413, empty or unreadable inputs 422).

Images and audio are measured from their headers (PIL's lazy open, libsndfile's info), so an oversized upload is
refused without decoding it. Each check returns the value the modality's ``encode`` takes.
"""

from __future__ import annotations

from typing import Any

from hftl.errors import DataError, InputTooLarge
from hftl.modalities import Modality
from hftl.serve.errors import invalid_input, too_large
from hftl.serve.settings import Limits


def serves(modality: Modality) -> bool:
    """Whether the modality can check a served request's inputs (``hftl serve`` refuses a model of one that cannot)."""
    return type(modality).check_served_input is not Modality.check_served_input


def check_inputs(modality: Modality, values: list[Any], limits: Limits) -> list[Any]:
    """Check every input of a request; the first bad one rejects the request with a message naming its index."""
    if not values:
        raise invalid_input("inputs: at least one input is required")
    if len(values) > limits.max_inputs:
        raise too_large(f"inputs: {len(values)} inputs in one request; the limit is {limits.max_inputs} (--max-inputs)")
    checked = []
    for index, value in enumerate(values):
        try:
            checked.append(modality.check_served_input(value, limits))
        except InputTooLarge as err:
            raise too_large(f"inputs[{index}]: {err}") from err
        except DataError as err:
            raise invalid_input(f"inputs[{index}]: {err}") from err
    return checked
