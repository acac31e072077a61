"""The FastAPI app: routes, error handling and metrics around a served model (a classifier, ``ServedModel``, or a
speech recogniser, ``ServedRecognizer``) and its DynamicBatcher.

One app object serves every deployment: uvicorn on a laptop (``hftl.serve.local``) and Ray Serve replicas
(``hftl.serve.ray_serve``). The model loads in the ASGI lifespan, so each worker process / replica loads its own.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from hftl.serve.batcher import DynamicBatcher, QueueFull
from hftl.serve.errors import RequestRejected, busy, too_large
from hftl.serve.metrics import CONTENT_TYPE, ServeMetrics
from hftl.serve.model import ServedModel
from hftl.serve.page import card_text, render_page
from hftl.serve.requests import PredictRequest, PredictResponse, TranscribeResponse, parse_predict, read_body
from hftl.serve.settings import ServeSettings
from hftl.serve.speech import ServedRecognizer

logger = logging.getLogger("hftl")

SETTINGS_ENV = "HFTL_SERVE_SETTINGS"  # how `hftl serve --workers K` hands settings to uvicorn's worker processes
PATHS = ("/", "/predict", "/health", "/ready", "/metrics", "/openapi.json")
RETRY_AFTER_S = 1


@dataclass
class _Served:
    model: ServedModel | ServedRecognizer
    batcher: DynamicBatcher
    page: str


def load_served(settings: ServeSettings) -> ServedModel | ServedRecognizer:
    """The export's kind picks the server's: an encoder-decoder speech export transcribes, anything else classifies."""
    from hftl.deploy.speech_runtime import is_speech_export

    return ServedRecognizer(settings) if is_speech_export(settings.export_dir) else ServedModel(settings)


def create_app(settings: ServeSettings) -> FastAPI:
    metrics = ServeMetrics()
    served: dict[str, _Served] = {}  # filled by the lifespan: empty = not ready

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        model = await run_in_threadpool(load_served, settings)
        batcher = DynamicBatcher(
            model.encode,
            model.run,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            on_batch=metrics.observe_batch,
        )
        batcher.start()
        page = render_page(
            title=model.name,
            modality=model.modality,
            task=model.task,
            takes_files=model.takes_files,
            upload_types=model.upload_types,
            labels=model.labels,
            backend=model.backend_name,
            top_k=min(settings.top_k, len(model.labels)),
            card=card_text(model.export_dir),
        )
        served["current"] = _Served(model, batcher, page)
        logger.info("serving %s (%s %s, %s) pid %d", model.export_dir, model.modality, model.task, model.backend_name, os.getpid())
        try:
            yield
        finally:
            served.clear()
            await batcher.stop()

    app = FastAPI(
        title="hftl serve",
        description="Classify texts, images or audio, or transcribe speech, with an hftl ONNX export.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads assets from a CDN; the schema stays at /openapi.json
        redoc_url=None,
    )

    def current() -> _Served:
        if "current" not in served:
            raise RequestRejected(503, "the model is still loading", "not_ready", {"Retry-After": str(RETRY_AFTER_S)})
        return served["current"]

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        path = request.url.path if request.url.path in PATHS else "other"
        start = time.perf_counter()
        response = await call_next(request)
        metrics.latency.labels(path).observe(time.perf_counter() - start)
        metrics.requests.labels(path, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestRejected)
    async def rejected(request: Request, err: RequestRejected) -> JSONResponse:
        metrics.errors.labels(err.reason).inc()
        return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        metrics.errors.labels("http_" + str(err.status_code)).inc()
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception) -> JSONResponse:
        logger.exception("request to %s failed", request.url.path)
        metrics.errors.labels("internal").inc()
        return JSONResponse({"error": f"internal error: {type(err).__name__}: {err}"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(current().page)

    @app.get("/health", summary="the process is up and its batching loop runs")
    async def health() -> JSONResponse:
        if "current" in served and not served["current"].batcher.alive:
            return JSONResponse({"status": "batcher stopped"}, status_code=503)
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    @app.get("/ready", summary="the model is loaded and the queue has room")
    async def ready() -> JSONResponse:
        s = served.get("current")
        if s is None:
            return JSONResponse({"ready": False, "reason": "loading"}, status_code=503)
        body = {"queue": s.batcher.pending_rows, "max_queue": settings.max_queue}
        if not s.batcher.has_room(1):
            return JSONResponse({"ready": False, "reason": "queue full", **body}, status_code=503)
        return JSONResponse({"ready": True, "modality": s.model.modality, "task": s.model.task, "labels": s.model.labels, **body})

    @app.get("/metrics", summary="Prometheus text exposition")
    async def prometheus() -> Response:
        if "current" in served:
            metrics.queue.set(served["current"].batcher.pending_rows)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post(
        "/predict",
        response_model=PredictResponse | TranscribeResponse,
        summary="top-k labels with scores for each input (a speech recognition model: a transcript per input)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": PredictRequest.model_json_schema()},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "inputs": {"type": "array", "items": {"type": "string", "format": "binary"}},
                                "top_k": {"type": "integer", "minimum": 1},
                            },
                            "required": ["inputs"],
                        }
                    },
                },
            }
        },
    )
    async def predict(request: Request) -> JSONResponse:
        s = current()
        limits = settings.limits
        body = await read_body(request, limits.max_body_bytes)
        values, top_k = await parse_predict(request, body, s.model.takes_files, limits.max_inputs)

        if len(values) > settings.max_queue:
            raise too_large(f"inputs: {len(values)} in one request; this server queues at most {settings.max_queue} (--max-queue)")
        # Hold the queue room before checking: under a burst, requests that would be refused at submit time must not
        # spend the cores on reading file headers first.
        if not s.batcher.reserve(len(values)):
            raise busy(f"the queue is full ({settings.max_queue} inputs waiting); retry later", RETRY_AFTER_S)
        try:
            # 4xx before queuing; decoding and tokenising happen for the whole batch in the batcher's model thread.
            # Texts are checked in place (type, emptiness, length: microseconds); files have their headers read in
            # the thread pool so a 64-image request does not hold the event loop.
            checked = await run_in_threadpool(s.model.check, values, limits) if s.model.takes_files else s.model.check(values, limits)
        except BaseException:
            s.batcher.release(len(values))
            raise
        try:
            outputs = await s.batcher.submit(checked, reserved=True)
        except QueueFull as err:  # the server is shutting down
            raise busy(f"the queue is full: {err}; retry later", RETRY_AFTER_S) from err
        answer = s.model.answer(outputs, top_k or settings.top_k)
        return JSONResponse({**answer, "model": s.model.name, "backend": s.model.backend_name})

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: the settings come from ``HFTL_SERVE_SETTINGS`` (JSON)."""
    return create_app(ServeSettings.from_json(os.environ[SETTINGS_ENV]))
