"""Load test of `hftl serve` over loopback: throughput, p50/p99 latency, errors and peak server RSS at 1, 8, 32 and
64 concurrent clients, with and without dynamic batching (and on Ray Serve with --ray; interleaved per level), then
past saturation, then with a worker killed mid-load (uvicorn workers, and Ray Serve replicas with --ray).

    python bench/serve_load.py [--target RUN_DIR] [--requests 600] [--seconds 30] [--ray]
    python bench/serve_load.py --speech RUN_DIR [--clips FOLDER] [--requests 16] [--seconds 60]

Each client sends one text per request and waits for the answer before sending the next (closed loop; after a 503
it waits the Retry-After the server asked for); a level ends
after --requests requests or --seconds, whichever comes first. The target defaults to runs/serve_demo (the MiniLM
recipe trained 1 epoch, see README "Serving"), else runs/demo. Prints markdown tables on stdout and writes
runs/bench/serve_load.json. Client and server share the machine's cores: the numbers include the client's cost.

``--speech``: a speech recognition export instead, sent one clip per request (the first 8 WAV files of --clips, the
zoo's espeak-sentences test clips by default) at 1 and 4 clients, batching vs no batching, interleaved; no overload
or worker-loss runs (those do not depend on the model). Writes runs/bench/serve_load_speech.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness
import httpx
import numpy as np
import psutil

from hftl.files import write_json_atomic
from hftl.serve.process import ServerProcess

TEXTS = [
    "Shares in the carmaker fell after it cut its profit forecast for the year.",
    "The striker scored twice as the champions won the cup final.",
    "The new phone runs software that lets users stream films over broadband.",
    "The minister said the election would be held in the spring.",
    "The film festival opened with a premiere of the director's latest drama.",
    "Oil prices rose as investors worried about supply in the coming months.",
]
RAY_MODE = "Ray Serve x2"
ZOO_CLIPS = Path.home() / ".cache" / "hftl" / "datasets" / "espeak-sentences" / "wav" / "test"
TEXT_BODIES = [{"inputs": [text], "top_k": 1} for text in TEXTS]
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in CPU_FLAGS if f in present]
    return []


class RssSampler:
    """Peak RSS of a process and all its children (uvicorn workers, Ray's processes), sampled every 50 ms."""

    def __init__(self, pid: int):
        self.root, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                for p in [self.root, *self.root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
            except psutil.Error:
                pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def load(url: str, clients: int, requests: int, seconds: float, on_tick=None, bodies=TEXT_BODIES) -> dict[str, Any]:
    """Closed-loop load: ``clients`` concurrent senders until ``requests`` were sent or ``seconds`` passed; sender k
    posts ``bodies`` k, k + clients, ... in turn."""
    latencies, codes, sent, bare_503 = [], {}, 0, 0
    deadline = time.perf_counter() + seconds
    timeline: list[tuple[float, str]] = []  # (time since start, outcome) for the worker-loss analysis
    start = time.perf_counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(60.0)) as client:

        async def sender(k: int) -> None:
            nonlocal sent, bare_503
            i = k
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                t0 = time.perf_counter()
                try:
                    response = await client.post("/predict", json=bodies[i % len(bodies)])
                    outcome = str(response.status_code)
                    if response.status_code == 503:  # a well-behaved client waits as told before its next request
                        retry_after = float(response.headers.get("retry-after", 0))
                        bare_503 += "retry-after" not in response.headers
                except httpx.TimeoutException:
                    outcome = "timeout"
                except httpx.HTTPError as err:
                    outcome = type(err).__name__
                elapsed = time.perf_counter() - t0
                codes[outcome] = codes.get(outcome, 0) + 1
                timeline.append((t0 - start, outcome))
                if outcome == "200":
                    latencies.append(elapsed)
                elif outcome == "503":
                    await asyncio.sleep(retry_after)
                i += clients

        tick = asyncio.create_task(on_tick(start)) if on_tick else None
        await asyncio.gather(*(sender(k) for k in range(clients)))
        if tick:
            await tick
    wall = time.perf_counter() - start
    ok = codes.get("200", 0)
    return {
        "clients": clients,
        "requests": sum(codes.values()),
        "ok": ok,
        "seconds": round(wall, 2),
        "throughput_rps": round(ok / wall, 2),
        "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1) if latencies else None,
        "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1) if latencies else None,
        "codes": codes,
        "errors": sum(n for c, n in codes.items() if c != "200"),
        "five_xx": sum(n for c, n in codes.items() if c.startswith("5")),
        "503_without_retry_after": bare_503,
        "timeline": timeline,
    }


def run_level(server: ServerProcess, clients: int, requests: int, seconds: float, on_tick=None, bodies=TEXT_BODIES) -> dict[str, Any]:
    load_before = os.getloadavg()[0]  # the machine is shared: each row says how busy it was
    with RssSampler(server.proc.pid) as rss:
        row = asyncio.run(load(server.url, clients, requests, seconds, on_tick, bodies))
    row["peak_rss_mb"] = round(rss.peak / 2**20)
    row["load_1min"] = round(max(load_before, os.getloadavg()[0]), 2)
    return row


def load_backend_model(target: Path, backend: str, quantized: bool, threads: int):
    """The served model (classifier or recogniser) as the server loads it, in this process, for
    :func:`backend_batch_ratio`."""
    from hftl.serve.app import load_served
    from hftl.serve.settings import ServeSettings, resolve_export_dir

    export_dir, backend = resolve_export_dir(target, backend)
    return load_served(ServeSettings(str(export_dir), backend=backend, quantized=quantized, num_threads=threads))


def backend_batch_ratio(model, values: list[Any], big: int = 32, repeats: int = 10) -> dict[str, float]:
    """Per-input cost of the runtime at batch 1 vs batch ``big`` (what dynamic batching can win at most): the
    served model's own preprocessing of a batch, then its model call timed in alternating calls so both sizes see
    the same machine load; measured between the load levels, servers idle."""
    features = {batch: model.encode([values[i % len(values)] for i in range(batch)]) for batch in (1, big)}
    samples: dict[int, list[float]] = {1: [], big: []}
    for batch in (1, big):
        model.run(features[batch])  # first calls allocate
    for _ in range(repeats):
        for batch in (1, big):
            t0 = time.perf_counter()
            model.run(features[batch])
            samples[batch].append(time.perf_counter() - t0)
    times = {batch: statistics.median(v) for batch, v in samples.items()}
    return {
        "batch": big,
        "batch_1_ms": round(1000 * times[1], 2),
        f"batch_{big}_ms": round(1000 * times[big], 2),
        "per_input_speedup": round(big * times[1] / times[big], 2),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def kill_during_load(server: ServerProcess, victim_pid, clients: int, seconds: float) -> dict[str, Any]:
    """Load for ``seconds``; SIGKILL ``victim_pid()`` a third of the way in; count failures before and after."""
    killed: dict[str, Any] = {}

    async def killer(start: float) -> None:
        await asyncio.sleep(seconds / 3)
        pid = await asyncio.to_thread(victim_pid)
        os.kill(pid, signal.SIGKILL)
        killed.update(pid=pid, at_s=round(time.perf_counter() - start, 2))

    row = run_level(server, clients, 10**9, seconds, on_tick=killer)
    failed = [t for t, outcome in row["timeline"] if outcome != "200"]
    row.update(
        killed_pid=killed.get("pid"),
        killed_at_s=killed.get("at_s"),
        failed=len(failed),
        failed_window_s=round(max(failed) - min(failed), 2) if failed else 0.0,
        ok_after_kill=sum(1 for t, o in row["timeline"] if o == "200" and t > killed.get("at_s", 0)),
        last_failure_s=round(max(failed), 2) if failed else None,
    )
    return row


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The command line as JSON values (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=Path, default=None, help="run dir or export folder (default: runs/serve_demo, else runs/demo)")
    p.add_argument("--backend", default="onnxruntime", help="serving runtime: onnxruntime (default) or openvino")
    p.add_argument("--fp32", action="store_true", help="serve the fp32 model (default: the int8 one)")
    p.add_argument("--clients", default=None, help="concurrent clients per level (default: 1,8,32,64; --speech: 1,4)")
    p.add_argument("--requests", type=int, default=600, help="requests per level at most")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds per level at most")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-queue", type=int, default=64, help="server queue; the overload level sends 4x this many clients")
    p.add_argument("--ray", action="store_true", help="also load Ray Serve (2 replicas) at each level, overload it and kill a replica")
    p.add_argument("--skip-kill", action="store_true", help="no worker-loss runs")
    p.add_argument("--speech", type=Path, help="load a speech recognition export (RUN_DIR or RUN_DIR/onnx) instead")
    p.add_argument("--clips", type=Path, default=ZOO_CLIPS, help="--speech: folder of WAV clips sent (the first 8)")
    p.add_argument("--out", type=Path, default=harness.REPO / "runs" / "bench")
    args = p.parse_args(argv)
    if args.speech:
        return speech_main(args)
    target = args.target or next((harness.REPO / d for d in ("runs/serve_demo", "runs/demo")
                                  if (harness.REPO / d / "onnx").is_dir()), None)  # fmt: skip
    if target is None:
        raise SystemExit("serve_load: no --target and neither runs/serve_demo/onnx nor runs/demo/onnx exists (README 'Serving')")
    quantized = ["--backend", args.backend] + ([] if args.fp32 else ["--quantized"])
    cores = harness.usable_cores()
    levels = [int(c) for c in (args.clients or "1,8,32,64").split(",")]
    info = {**harness.machine(), "cpu_flags": cpu_flags(), "target": str(target), "int8": not args.fp32, "runtime": args.backend}
    harness.log(f"serve_load: {target} on {cores} cores, load average {info['load_average_1min']}")
    logs = Path(tempfile.mkdtemp(prefix="serve_load_"))
    common = [*quantized, "--threads", str(cores), "--max-queue", str(args.max_queue)]
    modes = {
        "batching": [*common, "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)],
        "no batching": [*common, "--max-batch", "1"],
    }
    if args.ray:  # the scale-out deployment on the same cores: 2 replicas of 1 runtime thread, each batching
        modes[RAY_MODE] = [*quantized, "--ray", "--workers", "2", "--threads", "1", "--max-queue", str(args.max_queue),
                           "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]  # fmt: skip
    servers = {m: ServerProcess(target, *a, log=logs / f"{m.replace(' ', '_')}.log") for m, a in modes.items()}
    results: dict[str, Any] = {"machine": info, "levels": [], "settings": settings(args) | {"target": str(target)}}
    try:
        for server in servers.values():
            server.wait_ready(300)
        for server in servers.values():  # warm-up: first calls allocate
            run_level(server, 4, 40, 10)
        model = load_backend_model(target, args.backend, not args.fp32, cores)
        for clients in levels:  # interleaved: both modes see the same machine load, level by level
            for mode, server in servers.items():
                row = run_level(server, clients, args.requests, args.seconds)
                harness.log(f"{mode:12s} {clients:3d} clients: {row['throughput_rps']} req/s p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms codes {row['codes']}")
                results["levels"].append({"mode": mode, **{k: v for k, v in row.items() if k != "timeline"}})
            if clients == max(levels, key=lambda c: (c == 32, c)):  # beside the 32-client rows (else the largest)
                results["backend"] = backend_batch_ratio(model, TEXTS)
                harness.log(f"runtime alone: {results['backend']}")
        del model
        for mode, key in (("batching", "overload"), (RAY_MODE, "overload_ray")):
            if mode in servers:
                over = run_level(servers[mode], 4 * args.max_queue, 4 * args.requests, args.seconds)
                harness.log(f"overload {mode} {4 * args.max_queue} clients: codes {over['codes']}")
                results[key] = {k: v for k, v in over.items() if k != "timeline"}
    finally:
        for server in servers.values():
            server.stop()

    results["worker_loss"] = []
    if not args.skip_kill:
        kill_args = [*quantized, "--workers", "2", "--max-queue", str(args.max_queue), "--max-batch", str(args.max_batch)]
        deployments = [("uvicorn, 2 workers", kill_args)] + ([("Ray Serve, 2 replicas", [*kill_args, "--ray"])] if args.ray else [])
        for name, server_args in deployments:
            server = ServerProcess(target, *server_args, log=logs / "kill.log")
            try:
                server.wait_ready(300)
                run_level(server, 4, 40, 10)

                def victim(url: str = server.url) -> int:  # the worker / replica that answered a fresh request
                    return httpx.get(url + "/health", timeout=30).json()["pid"]

                row = kill_during_load(server, victim, 32, args.seconds)
                row["deployment"] = name
                harness.log(f"{name}: killed pid {row['killed_pid']} at {row['killed_at_s']} s: {row['failed']} failed, codes {row['codes']}")
                results["worker_loss"].append({k: v for k, v in row.items() if k != "timeline"})
            finally:
                server.stop()
    results["machine"]["load_average_after"] = round(os.getloadavg()[0], 2)
    write_json_atomic(args.out / "serve_load.json", results)
    print(report(results))


def speech_main(args: argparse.Namespace) -> None:
    """A speech recognition export under load: batching vs no batching at a few client counts (see the module doc)."""
    import base64

    clips = sorted(args.clips.glob("*.wav"))[:8]
    if not clips:
        raise SystemExit(f"serve_load --speech: no .wav files in {args.clips} (--clips; the default needs `hftl zoo prepare espeak-sentences`)")
    bodies = [{"inputs": [base64.b64encode(path.read_bytes()).decode()]} for path in clips]
    levels = [int(c) for c in (args.clients or "1,4").split(",")]
    cores = harness.usable_cores()
    flags = ["--threads", str(cores), "--max-queue", str(args.max_queue)] + ([] if args.fp32 else ["--quantized"])
    modes = {"batching": [*flags, "--max-batch", str(max(levels)), "--max-wait-ms", str(args.max_wait_ms)],
             "no batching": [*flags, "--max-batch", "1"]}  # fmt: skip
    info = {**harness.machine(), "cpu_flags": cpu_flags(), "target": str(args.speech), "int8": not args.fp32,
            "clips": [p.name for p in clips], "audio_s": [round(_seconds(p), 2) for p in clips]}  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="serve_load_speech_"))
    servers = {m: ServerProcess(args.speech, *a, log=logs / f"{m.replace(' ', '_')}.log") for m, a in modes.items()}
    results: dict[str, Any] = {"machine": info, "levels": [], "settings": settings(args) | {"levels": levels}}
    try:
        for server in servers.values():
            server.wait_ready(300)
        for server in servers.values():  # warm-up: first calls allocate
            run_level(server, 1, 2, 60, bodies=bodies)
        for clients in levels:  # interleaved, as for text
            for mode, server in servers.items():
                row = run_level(server, clients, args.requests, args.seconds, bodies=bodies)
                harness.log(f"{mode:12s} {clients:3d} clients: {row['throughput_rps']} req/s p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms codes {row['codes']}")
                results["levels"].append({"mode": mode, **{k: v for k, v in row.items() if k != "timeline"}})
        model = load_backend_model(args.speech, "onnxruntime", not args.fp32, cores)
        results["backend"] = backend_batch_ratio(model, [{"bytes": p.read_bytes()} for p in clips], max(levels), repeats=3)
    finally:
        for server in servers.values():
            server.stop()
    results["machine"]["load_average_after"] = round(os.getloadavg()[0], 2)
    write_json_atomic(args.out / "serve_load_speech.json", results)
    print(speech_report(results))


def _seconds(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


def speech_report(r: dict[str, Any]) -> str:
    m, b, s = r["machine"], r["backend"], r["settings"]
    big = b["batch"]
    lines = [
        f"{m['cores']} cores ({m['cpu']}), load average {m['load_average_1min']} before, {m['load_average_after']} after; "
        f"target `{m['target']}` ({'int8' if m['int8'] else 'fp32'}, onnxruntime, {m['cores']} threads, greedy "
        f"decoding); {len(m['clips'])} clips of {min(m['audio_s'])}-{max(m['audio_s'])} s, one per request; at most "
        f"{s['requests']} requests or {s['seconds']:g} s per row; batching = --max-batch {max(s['levels'])} "
        f"--max-wait-ms {s['max_wait_ms']:g}, no batching = --max-batch 1.",
        "",
        harness.markdown_table(
            ["clients", "mode", "requests", "req/s", "p50 ms", "p99 ms", "errors", "peak RSS MiB", "load"],
            [[row["clients"], row["mode"], row["requests"], row["throughput_rps"], row["p50_ms"], row["p99_ms"],
              row["errors"], row["peak_rss_mb"], row["load_1min"]] for row in r["levels"]],  # fmt: skip
        ),
        "",
        f"The recogniser alone (the served preprocessing and greedy generate, load {b['load_1min']}): a batch of {big} "
        f"clips in {b[f'batch_{big}_ms']} ms vs {b['batch_1_ms']} ms for one, i.e. at most {b['per_input_speedup']:.2f}x per clip.",
    ]
    return "\n".join(lines)


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"{m['cores']} cores ({m['cpu']}; flags {' '.join(m['cpu_flags']) or 'none of ' + ', '.join(CPU_FLAGS)}), "
        f"load average {m['load_average_1min']} before, {m['load_average_after']} after; target `{m['target']}` "
        f"({'int8' if m['int8'] else 'fp32'}, {m.get('runtime', 'onnxruntime')}, {m['cores']} threads, 1 worker); loopback; closed-loop clients "
        f"(one text per request); at most {r['settings']['requests']} requests or {r['settings']['seconds']:g} s per row; "
        f"batching = --max-batch {r['settings']['max_batch']} --max-wait-ms {r['settings']['max_wait_ms']:g}, "
        "no batching = --max-batch 1; "
        + (f"{RAY_MODE} = batching on Ray Serve, --ray --workers 2 --threads 1 (2 replicas of 1 runtime thread behind "
           "Serve's proxy); " if r["settings"].get("ray", True) else "")  # fmt: skip
        + f"--max-queue {r['settings']['max_queue']}; load = the 1-minute load average "
        "(the higher of before and after the row).",
        "",
        harness.markdown_table(
            ["clients", "mode", "requests", "req/s", "p50 ms", "p99 ms", "p99/p50", "errors", "5xx", "peak RSS MiB",
             "load"],
            [[row["clients"], row["mode"], row["requests"], row["throughput_rps"], row["p50_ms"], row["p99_ms"],
              round(row["p99_ms"] / row["p50_ms"], 2) if row["p50_ms"] else None, row["errors"], row["five_xx"],
              row["peak_rss_mb"], row["load_1min"]] for row in r["levels"]],  # fmt: skip
        ),
    ]
    by = {(row["mode"], row["clients"]): row for row in r["levels"]}
    if ("batching", 32) in by and ("no batching", 32) in by:
        gain = by[("batching", 32)]["throughput_rps"] / max(by[("no batching", 32)]["throughput_rps"], 1e-9)
        b = r["backend"]
        lines += ["", f"At 32 clients batching gives {gain:.2f}x the throughput of no batching; the runtime alone, timed "
                  f"right after those rows (load {b['load_1min']}), runs a batch of 32 in {b['batch_32_ms']} ms vs "
                  f"{b['batch_1_ms']} ms for one input, i.e. at most {b['per_input_speedup']:.2f}x per input."]  # fmt: skip
    for key, where in (("overload", "batching"), ("overload_ray", RAY_MODE)):
        if key in r:
            o = r[key]
            lines += ["", f"Past saturation, {where} ({o['clients']} clients against --max-queue {r['settings']['max_queue']}, "
                      f"load {o['load_1min']}): {o['requests']} requests, answers {o['codes']}, p50 {o['p50_ms']} ms / p99 "
                      f"{o['p99_ms']} ms of the accepted ones, {o.get('503_without_retry_after', 0)} 503s without Retry-After, peak RSS "
                      f"{o['peak_rss_mb']} MiB."]  # fmt: skip
    for w in r["worker_loss"]:
        failed = (f"{w['failed']} of {w['requests']} requests failed ({w['codes']}), all within {w['failed_window_s']} s "
                  f"(the last sent at {w['last_failure_s']} s)") if w["failed"] else f"none of {w['requests']} requests failed"  # fmt: skip
        lines += ["", f"Worker loss ({w['deployment']}, 32 clients, load {w['load_1min']}, {w['seconds']} s, {w['throughput_rps']} req/s, p50 "
                  f"{w['p50_ms']} ms, p99 {w['p99_ms']} ms): pid {w['killed_pid']} SIGKILLed at {w['killed_at_s']} s; "
                  f"{failed}; {w['ok_after_kill']} succeeded after the kill; peak RSS {w['peak_rss_mb']} MiB."]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
