"""Prometheus metrics of one server: requests, errors, latency, batch sizes, queue depth.

Each app owns its registry (several apps in one process stay apart). With several uvicorn workers, prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``hftl serve --workers K``) sums all workers in ``/metrics``.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("hftl_serve_requests", "HTTP requests answered", ["path", "code"], registry=r)
        self.errors = Counter(
            "hftl_serve_errors", "requests answered with an error, by reason", ["reason"], registry=r
        )
        self.latency = Histogram(
            "hftl_serve_request_latency_seconds", "time to answer, by path", ["path"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "hftl_serve_batch_size", "inputs per model run (dynamic batching)", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_latency = Histogram(
            "hftl_serve_batch_seconds", "time of one model run", buckets=LATENCY_BUCKETS, registry=r
        )
        self.inputs = Counter("hftl_serve_inputs", "inputs classified", registry=r)
        self.queue = Gauge(
            "hftl_serve_queue_inputs", "inputs waiting for a batch", multiprocess_mode="livesum", registry=r
        )

    def observe_batch(self, rows: int, seconds: float) -> None:
        self.batch_size.observe(rows)
        self.batch_latency.observe(seconds)
        self.inputs.inc(rows)

    def render(self) -> bytes:
        """The text exposition of this process, or of all worker processes in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
