"""Run the app with uvicorn: one process, or K worker processes behind one socket (uvicorn restarts a dead one)."""

from __future__ import annotations

import os
import tempfile

from hftl.serve.app import SETTINGS_ENV, create_app
from hftl.serve.settings import ServeSettings


def serve_local(settings: ServeSettings, *, host: str, port: int, workers: int = 1) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    import uvicorn

    # Keep-alive longer than a client pool idles under load, so a reused connection is rarely closed under it.
    common = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": 10, "timeout_keep_alive": 30}
    if workers <= 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Workers are separate processes: they rebuild the app from the settings in the environment, and share
    # Prometheus metrics through files in a private folder (prometheus_client's multiprocess mode).
    with tempfile.TemporaryDirectory(prefix="hftl-serve-metrics-") as metrics_dir:
        os.environ[SETTINGS_ENV] = settings.to_json()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        # uvicorn kills a worker that misses a 5 s health ping (its default) and starts another: on a busy machine a
        # worker still importing torch misses it, and the cycle never ends (seen at load average 20). A worker that
        # is silent for a minute is hung.
        uvicorn.run("hftl.serve.app:app_from_env", factory=True, workers=workers, timeout_worker_healthcheck=60, **common)
