"""What the launcher was asked for, to catch a launch that silently starts fewer processes than requested.

``accelerate launch --cpu --num_processes N`` (and a ``distributed_type: MULTI_CPU`` config) start ONE process:
accelerate's multi-CPU mode needs ``mpirun``, and without it accelerate falls back to a single process without a
word. The script cannot see N in its environment, only in the command line of the ``accelerate launch`` process that
started it, so that is what is read here (with accelerate's own argument parser and config file reader).
"""

from __future__ import annotations

import os
from pathlib import Path



def check_world_size(started: int, on_cpu: bool) -> str | None:
    """The error to raise when the launcher asked for more processes than were started, else None."""
    asked = requested_processes()
    if asked is None or asked <= started:
        return None
    why = " (accelerate's multi-CPU mode needs mpirun, and falls back to one process without it)" if on_cpu else ""
    return (
        f"accelerate launch was asked for {asked} processes but started {started}{why}. "
        f"For {asked} processes on CPU: `hftl train CONFIG --nproc {asked}` (torchrun underneath, gloo), "
        f"or `torchrun --nproc_per_node {asked} recipes/finetune.py CONFIG`"
    )


def _launcher_argv(pid: int) -> list[str] | None:
    """The arguments after ``accelerate launch`` of process ``pid``, or None if it is not such a launcher."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # not Linux, or the parent is gone
        return None
    args = [a.decode(errors="replace") for a in argv if a]
    for i, arg in enumerate(args[:-1]):
        if Path(arg).name in ("accelerate", "accelerate-launch") and args[i + 1] == "launch":
            return args[i + 2 :]
        if Path(arg).name == "accelerate-launch":
            return args[i + 1 :]
    return None


def requested_processes(pid: int | None = None) -> int | None:
    """How many processes the ``accelerate launch`` that started this process asked for (None: not launched so)."""
    if "ACCELERATE_MIXED_PRECISION" not in os.environ:  # every accelerate launch sets it
        return None
    argv = _launcher_argv(os.getppid() if pid is None else pid)
    if argv is None:
        return None
    from accelerate.commands.config.config_args import default_config_file, load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    try:
        args, _ = launch_command_parser().parse_known_args(argv)
    except SystemExit:  # an argv the parser refuses: the launcher itself would have refused it
        return None
    if args.num_processes is not None:
        return int(args.num_processes)
    config_file = args.config_file or (default_config_file if Path(default_config_file).is_file() else None)
    if config_file is None:
        return None
    try:
        config = load_config_from_file(config_file)
    except Exception:  # noqa: BLE001  (a config accelerate could not read either; it reports that itself)
        return None
    return int(getattr(config, "num_processes", 1) or 1)  # accelerate's num_processes counts every machine's
