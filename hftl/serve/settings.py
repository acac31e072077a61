"""What `hftl serve` serves and how: one dataclass, filled from the command line, passed to every worker/replica."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from hftl.deploy.backends import AUTO, BACKENDS
from hftl.errors import ConfigError, HftlError


@dataclass(frozen=True)
class Limits:
    """Per-request bounds; a request past one is answered 413 with the limit in the message."""

    max_inputs: int = 64  # inputs in one request
    max_text_chars: int = 20_000  # characters of one text (the tokenizer truncates to text.max_length anyway)
    max_image_pixels: int = 4096 * 4096  # width x height of one image, read from its header before decoding
    max_audio_seconds: float = 60.0  # duration of one clip, read from its header before decoding
    max_body_bytes: int = 32 * 1024 * 1024  # the whole request body


@dataclass(frozen=True)
class ServeSettings:
    """Everything a worker process (or Ray replica) needs to build the app.

    Attributes:
        export_dir: The folder served: an export (``RUN_DIR/onnx``, ``RUN_DIR/openvino``) or, for ``torch``, the run's
            PyTorch model (``RUN_DIR/model``).
        backend: Runtime name in ``hftl.deploy.backends.BACKENDS`` (resolved: never ``auto``).
        quantized: Serve the export's int8 model instead of its fp32 one.
        precision: fp32, or bf16 (OpenVINO's fp32 IR under the bf16 inference hint; PyTorch's bf16 autocast), for the
            non-int8 model.
            `hftl serve` fills both from the export's measured default (hftl.deploy.default_variant) or its flags.
        max_batch: Most inputs run as one batch; 1 turns dynamic batching off.
        max_wait_ms: How long the first queued input waits for others to join its batch.
        max_queue: Most inputs waiting (not yet running); past it requests get 503 + Retry-After.
        num_threads: Runtime intra-op threads per worker (None: the cores this process may use).
        spin: Let onnxruntime's idle intra-op threads busy-wait between calls (its default). Off for serving: the
            spinning threads take the cores the event loop and the tokenizer need between batches (measured on a
            shared 2-core machine: 2 threads at 8 clients served about half the requests with spinning on).
        top_k: Labels returned per input when the request does not say.
    """

    export_dir: str
    backend: str = "onnxruntime"
    quantized: bool = False
    precision: str = "fp32"
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    num_threads: int | None = None
    spin: bool = False
    top_k: int = 3
    limits: Limits = Limits()

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(f"--max-batch must be >= 1, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        if self.max_queue < self.max_batch:
            raise ConfigError(f"--max-queue ({self.max_queue}) must be >= --max-batch ({self.max_batch})")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")
        variants = BACKENDS[self.backend].variants if self.backend in BACKENDS else {}
        if self.precision == "bf16" and "bf16" not in variants:
            raise ConfigError(f"{self.backend} has no bf16 path on CPU: serve its fp32 or int8 (--quantized) model")
        if self.quantized and "int8" not in variants:
            with_int8 = ", ".join(name for name, spec in BACKENDS.items() if "int8" in spec.variants)
            raise ConfigError(f"{self.backend} has no int8 model (--quantized is for the exports of {with_int8})")
        if self.top_k < 1:
            raise ConfigError(f"--top-k must be >= 1, got {self.top_k}")
        for key, value in dataclasses.asdict(self.limits).items():
            if value <= 0:
                raise ConfigError(f"limit {key} must be > 0, got {value}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        data = json.loads(text)
        return cls(**{**data, "limits": Limits(**data.get("limits", {}))})


def resolve_export_dir(path: str | Path, backend: str = AUTO) -> tuple[Path, str]:
    """RUN_DIR or an export folder -> (the folder to serve, the runtime that serves it).

    A speech recognition export (RUN_DIR/onnx with an encoder and a decoder graph) is served on onnxruntime.

    ``auto``: an export folder is served by the runtime it was written for; a run by its fastest export (OpenVINO when
    RUN_DIR/openvino exists and the extra is installed, else RUN_DIR/onnx: :func:`hftl.deploy.export.serving_dir`).
    A named runtime serves RUN_DIR/<its folder>, or an export folder written for it; ``torch`` the run's own PyTorch
    model (RUN_DIR/model), which ``auto`` never picks: a server is meant to run an export.

    Raises:
        HftlError: nothing fits (the message names what is missing and the command that writes it).
    """
    from hftl.deploy.export import EXPORT_CONFIG, serving_target
    from hftl.deploy.speech_runtime import is_speech_export

    path = Path(path).expanduser()
    for candidate in (path, path / "onnx"):
        if is_speech_export(candidate):  # encoder + decoder graphs: onnxruntime through optimum only
            if backend not in (AUTO, "onnxruntime"):
                raise HftlError(f"{candidate} is a speech recognition export: it is served on onnxruntime, not {backend}")
            return candidate.resolve(), "onnxruntime"
    folder, runtime = serving_target(path, backend)
    if backend == AUTO and not BACKENDS[runtime].exported:
        raise HftlError(
            f"{path} has no export to serve (no {EXPORT_CONFIG} in {path / 'onnx'} or in {path / 'openvino'}): run "
            f"`hftl export RUN_DIR` first, or serve the run's PyTorch model with --backend {runtime}"
        )
    return folder.resolve(), runtime
