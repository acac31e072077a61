"""Per-input checks run before any decoding work: size limits (413) and empty or unreadable inputs (422).

Images and audio are measured from their headers (PIL's lazy open, libsndfile's info), so an oversized upload is
refused without decoding it. Each check returns the value the modality's ``encode`` takes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from hftl.serve.errors import invalid_input, too_large
from hftl.serve.settings import Limits


def check_text(index: int, value: Any, limits: Limits) -> str:
    if not isinstance(value, str):
        raise invalid_input(f"inputs[{index}]: expected a text (JSON string), got {type(value).__name__}")
    if not value.strip():
        raise invalid_input(f"inputs[{index}]: empty text")
    if len(value) > limits.max_text_chars:
        raise too_large(
            f"inputs[{index}]: text of {len(value)} characters; the limit is {limits.max_text_chars} (--max-text-chars)"
        )
    return value


def check_image(index: int, value: bytes, limits: Limits) -> dict[str, bytes]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(value)) as image:  # reads the header only
            width, height = image.size
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise invalid_input(f"inputs[{index}]: not a readable image ({len(value)} bytes): {err}") from err
    if width * height > limits.max_image_pixels:
        raise too_large(
            f"inputs[{index}]: image of {width}x{height} = {width * height} pixels; "
            f"the limit is {limits.max_image_pixels} pixels (--max-image-pixels)"
        )
    return {"bytes": value}


def check_audio(index: int, value: bytes, limits: Limits) -> dict[str, bytes]:
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(value))
    except Exception as err:  # libsndfile raises LibsndfileError / RuntimeError / TypeError for bad bytes
        raise invalid_input(f"inputs[{index}]: not a readable audio file ({len(value)} bytes; WAV, FLAC, OGG, MP3): {err}") from err
    if info.frames <= 0 or info.samplerate <= 0:
        raise invalid_input(f"inputs[{index}]: audio file contains no samples")
    seconds = info.frames / info.samplerate
    if seconds > limits.max_audio_seconds:
        raise too_large(
            f"inputs[{index}]: audio of {seconds:.1f} s; the limit is {limits.max_audio_seconds:g} s (--max-audio-seconds)"
        )
    return {"bytes": value}


# modality -> check; text arrives as JSON strings, images and audio as bytes (base64 in JSON, or multipart files).
CHECKS: dict[str, Callable[[int, Any, Limits], Any]] = {"text": check_text, "vision": check_image, "audio": check_audio}
BINARY_MODALITIES = frozenset({"vision", "audio"})


def check_inputs(modality: str, values: list[Any], limits: Limits) -> list[Any]:
    """Check every input of a request; the first bad one rejects the request with a message naming its index."""
    if not values:
        raise invalid_input("inputs: at least one input is required")
    if len(values) > limits.max_inputs:
        raise too_large(f"inputs: {len(values)} inputs in one request; the limit is {limits.max_inputs} (--max-inputs)")
    check = CHECKS[modality]
    return [check(i, v, limits) for i, v in enumerate(values)]
