"""Dynamic batching: requests queue up, are run as one batch of up to ``max_batch`` inputs (or whatever has arrived
``max_wait`` after the first), and each gets its own rows back.

Requests queue their raw (checked) inputs; the batch's preprocessing runs in the model thread as one call on all of
them (one tokenizer call on the batch's texts), then the model runs once. Preprocessing in the request handlers
instead cost a thread-pool hop per request, its threads competing with the runtime's for the cores.

The queue is bounded in inputs: past ``max_queue`` waiting inputs ``submit`` raises ``QueueFull`` at once, so memory
and waiting time stay bounded under overload. A request can ``reserve`` its room before its inputs are checked. The
model runs on one worker thread, so the event loop keeps accepting (and batching) requests meanwhile.

One bad input fails only its own request: when a batch cannot be preprocessed, each request is preprocessed alone to
find the failing ones, which get their own error, and the rest still run as one batch, from the features they were
just given (:func:`_stack`); when the model run fails as a whole, each request is rerun alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger("hftl")

Features = Mapping[str, np.ndarray]


class QueueFull(Exception):
    """More inputs are waiting than the queue holds; the caller should answer 503 and ask the client to retry."""


@dataclass(eq=False)
class _Job:
    inputs: list[Any]
    future: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)

    @property
    def rows(self) -> int:
        return len(self.inputs)


def _inputs(jobs: Sequence[_Job]) -> list[Any]:
    return [value for job in jobs for value in job.inputs]


class DynamicBatcher:
    """Groups concurrent ``submit`` calls into batches: ``run(prepare(inputs)) -> one output row per input``.

    Args:
        prepare: The preprocessing (blocking): a batch's raw inputs -> model features; raises for an input it cannot read.
        run: The model call (blocking); gets the features of a batch.
        max_batch: Most inputs per batch (1: no batching, one request at a time).
        max_wait_s: How long the oldest waiting input waits for others before its batch runs anyway.
        max_queue: Most inputs waiting (not counting the batch running).
        on_batch: Called with (inputs, seconds) after each batch run, preprocessing included (metrics).
    """

    def __init__(
        self,
        prepare: Callable[[list[Any]], Features],
        run: Callable[[Features], Sequence[Any]],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        self._prepare, self._run, self.max_batch, self.max_wait_s, self.max_queue = prepare, run, max_batch, max_wait_s, max_queue
        self._on_batch = on_batch or (lambda rows, seconds: None)
        self._pending: deque[_Job] = deque()
        self.pending_rows = 0
        self.reserved_rows = 0  # room held by requests still checking their inputs
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hftl-model")

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="hftl-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(QueueFull("server is shutting down"))
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def has_room(self, rows: int) -> bool:
        return self.pending_rows + self.reserved_rows + rows <= self.max_queue

    def reserve(self, rows: int) -> bool:
        """Hold room for ``rows`` inputs (False when there is none); ``submit(..., reserved=True)`` uses it, ``release``
        gives it back when the request fails before submitting."""
        if not self.has_room(rows):
            return False
        self.reserved_rows += rows
        return True

    def release(self, rows: int) -> None:
        self.reserved_rows -= rows

    async def submit(self, inputs: list[Any], *, reserved: bool = False) -> Sequence[Any]:
        """The model's output rows for ``inputs`` (raw, checked), run in some batch (``reserved``: in the room
        ``reserve`` held).

        Raises:
            QueueFull: the queue cannot take ``rows`` more inputs now.
        """
        rows = len(inputs)
        if reserved:
            self.release(rows)
        elif not self.has_room(rows):
            raise QueueFull(f"{self.pending_rows} inputs are waiting (the queue holds {self.max_queue})")
        job = _Job(list(inputs), asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self.pending_rows += rows
        self._arrived.set()
        return await job.future

    async def _loop(self) -> None:
        while True:
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            await self._fill()
            jobs = self._take()
            if jobs:
                await self._run_batch(jobs)

    async def _fill(self) -> None:
        """Wait until a full batch is waiting or the oldest input has waited max_wait_s."""
        deadline = self._pending[0].queued_at + self.max_wait_s
        while self.pending_rows < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:  # noqa: UP041  (builtin TimeoutError only from 3.11)
                return

    def _take(self) -> list[_Job]:
        """Oldest requests first, whole requests only, up to max_batch inputs (always at least one request)."""
        jobs, rows = [], 0
        while self._pending and (not jobs or rows + self._pending[0].rows <= self.max_batch):
            job = self._pending.popleft()
            self.pending_rows -= job.rows
            if job.future.done():  # the client went away while waiting
                continue
            jobs.append(job)
            rows += job.rows
        return jobs

    async def _run_batch(self, jobs: list[_Job]) -> None:
        start = time.perf_counter()
        answers = await asyncio.get_running_loop().run_in_executor(self._executor, self._answer, jobs)
        self._on_batch(sum(j.rows for j in jobs), time.perf_counter() - start)
        for job, answer in zip(jobs, answers, strict=True):
            if isinstance(answer, Exception):
                _set(job.future, error=answer)
            else:
                _set(job.future, result=answer)

    def _answer(self, jobs: list[_Job]) -> list[Any]:
        """In the model thread: each job's output rows, or the exception that fails it (and only it)."""
        answers: dict[_Job, Any] = {}
        try:
            runnable, features = jobs, self._prepare(_inputs(jobs))
        except Exception as err:
            if len(jobs) == 1:
                return [err]
            runnable, parts = [], []
            for job in jobs:  # find the request(s) whose inputs cannot be read; the others still run together
                try:
                    parts.append(self._prepare(job.inputs))
                    runnable.append(job)
                except Exception as job_err:
                    answers[job] = job_err
            features = _stack(parts) if parts else None
            if features is None and runnable:  # shapes that depend on the call's inputs: preprocess them together
                features = self._prepare(_inputs(runnable))
        if runnable:
            try:
                outputs = self._run(features)
            except Exception as err:
                if len(runnable) == 1:
                    answers[runnable[0]] = err
                else:
                    logger.warning("a batch of %d requests failed (%s); running each alone", len(runnable), err)
                    for job in runnable:
                        answers[job] = self._answer([job])[0]
            else:
                offset = 0
                for job in runnable:
                    answers[job] = outputs[offset : offset + job.rows]
                    offset += job.rows
        return [answers[job] for job in jobs]


def _stack(parts: Sequence[Features]) -> dict[str, np.ndarray] | None:
    """The requests' own features as one batch, or None where they do not stack (other keys or row shapes).

    Stacking gives what one preprocessing call on all their inputs would: every modality preprocesses input by input
    to a fixed shape (texts padded to ``text.max_length``, images resized to one size, clips cut or padded to one
    length; the served text model trims a batch's padding in its model call, after this), so a row does not depend
    on its neighbours. A processor that pads to the longest input of its call gives rows of other widths: those
    requests are preprocessed again together instead.
    """
    keys = set(parts[0])
    if any(set(part) != keys for part in parts):
        return None
    arrays = {key: [np.asarray(part[key]) for part in parts] for key in keys}
    if any(len({(a.ndim, a.shape[1:], a.dtype) for a in values}) > 1 for values in arrays.values()):
        return None
    return {key: np.concatenate(values) for key, values in arrays.items()}


def _set(future: asyncio.Future, *, result: np.ndarray | None = None, error: BaseException | None = None) -> None:
    if future.done():  # cancelled: the client disconnected
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
