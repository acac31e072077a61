"""Run a script as torchrun would, recording what this process writes under a folder and which sockets it opens.

    torchrun --nproc_per_node 2 tests/helpers/audit_rank.py WATCHED_DIR REPORT_PREFIX SCRIPT [ARGS ...]

Each rank writes REPORT_PREFIX-<rank>.json: {"rank", "writes": [[event, path], ...], "connects": [address, ...]}.
It sees what goes through Python's audit hooks (open for writing, os.mkdir / rename / replace / remove, shutil.rmtree,
socket.connect); native code that writes by itself (e.g. safetensors' Rust writer) shows only through the folders and
renames around it.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree", "shutil.copyfile")


def main() -> None:
    watched, report_prefix, script, *args = sys.argv[1:]
    watched = os.path.abspath(watched)
    rank = int(os.environ.get("RANK", "0"))
    writes: list[list[str]] = []
    connects: list[str] = []

    def record(event: str, path: object) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(path))
            if path == watched or path.startswith(watched + os.sep):
                writes.append([event, path])

    def hook(event: str, hook_args: tuple) -> None:
        if event == "open":
            path, mode, flags = hook_args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
            if writing:
                record(event, path)
        elif event in _PATH_EVENTS:
            record(event, hook_args[0])
            if event == "os.rename":
                record(event, hook_args[1])
        elif event == "socket.connect":
            connects.append(str(hook_args[1]))

    def report() -> None:
        with open(f"{report_prefix}-{rank}.json", "w") as f:
            json.dump({"rank": rank, "writes": writes, "connects": connects}, f, indent=1)

    atexit.register(report)
    sys.addaudithook(hook)
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
