"""`POST /predict` bodies -> (raw inputs, top_k), with a 4xx that says what is wrong for every malformed request.

Two encodings:
    application/json     {"inputs": [...], "top_k": 3}; texts as strings, images/audio as base64 strings
                         (a ``data:...;base64,`` prefix is accepted).
    multipart/form-data  one part named ``inputs`` per input (files for images/audio, fields for texts) and an
                         optional ``top_k`` field.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from hftl.serve.errors import bad_request, invalid_input, too_large, unsupported_type

JSON, MULTIPART = "application/json", "multipart/form-data"


class PredictRequest(BaseModel):
    """The JSON body of ``POST /predict`` (also published as the OpenAPI schema)."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(
        min_length=1, description="texts, or base64-encoded image / audio files (one model input each)"
    )
    top_k: int | None = Field(default=None, ge=1, description="labels returned per input, best first")


class Prediction(BaseModel):
    label: str
    score: float


class PredictResponse(BaseModel):
    predictions: list[list[Prediction]] = Field(description="per input, its top_k labels with softmax scores")
    model: str
    backend: str


class Transcript(BaseModel):
    text: str


class TranscribeResponse(BaseModel):
    """A speech recognition model's answer (``top_k`` does not apply)."""

    transcripts: list[Transcript] = Field(description="per input, its greedy transcript")
    model: str
    backend: str


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``max_bytes`` (never buffered past the limit)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(f"request body of {declared} bytes; the limit is {max_bytes} bytes (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(f"request body over {max_bytes} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_predict(request: Request, body: bytes, binary: bool, max_inputs: int) -> tuple[list[Any], int | None]:
    """(raw inputs, top_k) of a ``/predict`` request: strings for a text model, bytes for an image / audio model."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == JSON:
        return _parse_json(body, binary)
    if content_type == MULTIPART:
        return await _parse_multipart(request, body, binary, max_inputs)
    raise unsupported_type(
        f"content type {content_type or '(none)'!r} is not accepted; send {JSON} or {MULTIPART}"
    )


def _parse_json(body: bytes, binary: bool) -> tuple[list[Any], int | None]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise bad_request(f"malformed JSON body: {err}") from err
    try:
        parsed = PredictRequest.model_validate(data)
    except ValidationError as err:
        raise invalid_input(_describe(err)) from err
    values = [_b64(i, v) for i, v in enumerate(parsed.inputs)] if binary else list(parsed.inputs)
    return values, parsed.top_k


def _b64(index: int, value: str) -> bytes:
    if value.startswith("data:") and "," in value:  # data URLs, as a browser's FileReader makes them
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise invalid_input(f"inputs[{index}]: not valid base64 ({err}); send the file's bytes base64-encoded") from err


def _describe(err: ValidationError) -> str:
    """Pydantic's errors as one line that names each field: 'unknown field 'x'; inputs[0]: ...'."""
    fields = ", ".join(PredictRequest.model_fields)
    parts = []
    for e in err.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(e["loc"]))
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown field {loc!r} (the fields are: {fields})")
        elif e["type"] == "missing":
            parts.append(f"missing field {loc!r}")
        else:
            parts.append(f"{loc or 'body'}: {e['msg']}")
    return "; ".join(parts)


async def _parse_multipart(request: Request, body: bytes, binary: bool, max_inputs: int) -> tuple[list[Any], int | None]:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=max_inputs + 1, max_fields=max_inputs + 2)
    except Exception as err:  # starlette raises MultiPartException / HTTPException for broken or oversized forms
        raise bad_request(f"malformed multipart body: {getattr(err, 'detail', None) or err}") from err
    try:
        unknown = sorted(set(form.keys()) - {"inputs", "top_k"})
        if unknown:
            raise invalid_input(f"unknown form field(s) {unknown} (the fields are: inputs, top_k)")
        values = []
        for i, part in enumerate(form.getlist("inputs")):
            if binary != isinstance(part, UploadFile):
                want = "a file" if binary else "a text field"
                raise invalid_input(f"inputs[{i}]: expected {want}: this model takes {'files' if binary else 'texts'}")
            values.append(await part.read() if binary else part)
        return values, _top_k(form.get("top_k"))
    finally:
        await form.close()


def _top_k(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit() and int(value) >= 1:
        return int(value)
    raise invalid_input(f"top_k: expected a whole number >= 1, got {value!r}")
