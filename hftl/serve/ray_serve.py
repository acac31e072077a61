"""`hftl serve --ray`: the same FastAPI app as a Ray Serve deployment with N replicas on a local Ray.

Ray Serve's proxy spreads requests over the replicas and restarts a replica that dies; each replica loads the model
in the app's lifespan and batches its own requests (``hftl.serve.batcher``). Requests past every replica's share
wait in Ray's router queue, itself bounded (``max_queued_requests``): Ray answers 503 + Retry-After past it.

``/metrics`` sums every replica, as with ``--workers K``: the Ray is local and private (one machine), so the
replicas share prometheus_client's multiprocess files in one folder, handed to each replica's environment.
"""

from __future__ import annotations

import logging

from ray import serve

from hftl.serve.app import RETRY_AFTER_S, create_app
from hftl.serve.settings import ServeSettings

logger = logging.getLogger("hftl")
APP_NAME = "hftl"


@serve.ingress()
class HftlServe:
    """One replica: the hftl app built from the settings (JSON, so it crosses to the replica's process as text)."""

    def __init__(self, settings_json: str):
        self._settings = ServeSettings.from_json(settings_json)

    def __serve_build_asgi_app__(self):
        return create_app(self._settings)


def deployment(settings: ServeSettings, replicas: int, metrics_dir: str):
    """The bound Serve application: ``replicas`` copies of the app, each with a bounded number of requests, all
    writing their Prometheus metrics into ``metrics_dir``."""
    return serve.deployment(
        HftlServe,
        name="HftlServe",
        num_replicas=replicas,
        # Two batches per replica: one running, the next one filling meanwhile (Serve's own rule for @serve.batch:
        # max_ongoing_requests >= max_batch_size x concurrent batches). Past that, requests wait in Serve's router,
        # which hands each to whichever replica frees a slot first: one FIFO queue for all replicas instead of a
        # queue per replica that a slow batch holds up (the replica's --max-queue is then never the bound).
        # Tried under load (2026-11-30, 2 replicas of 1 thread, 32 clients, load 10-13, one-off runs not kept in
        # the repo, so no figures): 8, 16 or 96 here left p99 where it was while the replicas answered every request
        # within 0.5 s: on a contended CPU the tail is Serve's proxy, not this setting.
        max_ongoing_requests=2 * settings.max_batch,
        # The router's bound: past it Serve answers 503, with Retry-After as the replicas' own 503s say it.
        max_queued_requests=settings.max_queue,
        backpressure_config={"status_code": 503, "retry_after_s": RETRY_AFTER_S},
        ray_actor_options={
            "num_cpus": settings.num_threads or 1,
            "runtime_env": {"env_vars": {"PROMETHEUS_MULTIPROC_DIR": metrics_dir}},
        },
    ).bind(settings.to_json())


def serve_ray(settings: ServeSettings, *, host: str, port: int, replicas: int) -> None:
    """Start a local Ray (as many CPUs as the replicas need), deploy, and serve until interrupted."""
    import tempfile

    import ray

    # address="local": always a new, private Ray, never one found on the machine (another user's cluster).
    ray.init(address="local", num_cpus=max(1, replicas * (settings.num_threads or 1)), include_dashboard=False)
    try:
        with tempfile.TemporaryDirectory(prefix="hftl-serve-metrics-") as metrics_dir:
            serve.start(http_options={"host": host, "port": port})
            serve.run(deployment(settings, replicas, metrics_dir), name=APP_NAME, route_prefix="/", blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
