"""A served request's inputs, checked by their modality before any decoding: 413 past a limit, 422 unusable, the
index named; serve itself holds no per-modality table."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
import soundfile as sf

from hftl.modalities import Modality, get_modality, registered_modalities
from hftl.serve.errors import RequestRejected
from hftl.serve.limits import check_inputs, serves
from hftl.serve.settings import Limits
from tests.helpers.serve_fixtures import png_bytes, wav_bytes


def rejected(modality: str, values: list, limits: Limits | None = None) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        check_inputs(get_modality(modality), values, limits or Limits())
    return info.value


def test_every_registered_modality_checks_its_served_inputs():
    assert all(serves(get_modality(name)) for name in registered_modalities())

    class Unchecked(Modality):
        name = "unchecked"

    assert not serves(Unchecked())


def test_texts():
    assert check_inputs(get_modality("text"), ["a", "b c"], Limits()) == ["a", "b c"]
    err = rejected("text", ["ok", "x" * 11], Limits(max_text_chars=10))
    assert (err.status, err.message) == (413, "inputs[1]: text of 11 characters; the limit is 10 (--max-text-chars)")
    assert (rejected("text", ["  "]).status, rejected("text", ["  "]).message) == (422, "inputs[0]: empty text")
    assert rejected("text", [3]).message == "inputs[0]: expected a text (JSON string), got int"


def test_images_are_measured_from_their_header():
    assert check_inputs(get_modality("vision"), [png_bytes(size=28)], Limits()) == [{"bytes": png_bytes(size=28)}]
    err = rejected("vision", [png_bytes(size=65)], Limits(max_image_pixels=4096))
    assert err.status == 413 and "65x65 = 4225 pixels; the limit is 4096 pixels (--max-image-pixels)" in err.message
    # a header claiming 5000x5000 (past the default 4096x4096) over a 28x28 image's pixel data: refused from the
    # header alone (decoding would fail)
    png = png_bytes(size=28)  # signature, then the IHDR chunk: length, type, 13 bytes (width, height, ...), CRC
    ihdr = (5000).to_bytes(4, "big") * 2 + png[24:29]
    huge = png[:16] + ihdr + zlib.crc32(b"IHDR" + ihdr).to_bytes(4, "big") + png[33:]
    assert rejected("vision", [huge]).status == 413
    corrupt = rejected("vision", [b"not an image"])
    assert corrupt.status == 422 and corrupt.message.startswith("inputs[0]: not a readable image (12 bytes)")


def test_audio_is_measured_from_its_header():
    assert len(check_inputs(get_modality("audio"), [wav_bytes(seconds=0.5)], Limits())) == 1
    err = rejected("audio", [wav_bytes(seconds=0.5), wav_bytes(seconds=2.5)], Limits(max_audio_seconds=2))
    assert (err.status, err.message) == (413, "inputs[1]: audio of 2.5 s; the limit is 2 s (--max-audio-seconds)")
    assert rejected("audio", [b"RIFF....WAVEfmt garbage"]).status == 422
    empty = io.BytesIO()
    sf.write(empty, np.zeros(0, dtype=np.float32), 16_000, format="WAV")
    assert rejected("audio", [empty.getvalue()]).message == "inputs[0]: audio file contains no samples"


def test_the_request_size_comes_first():
    assert rejected("text", []).message == "inputs: at least one input is required"
    too_many = rejected("text", ["a"] * 3, Limits(max_inputs=2))
    assert too_many.status == 413 and "the limit is 2 (--max-inputs)" in too_many.message
