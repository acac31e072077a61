"""`torchrun ... tests/helpers/hook_stop_run.py STOP_STEP key=value ...`: the recipe with a hook that stops on rank 1 only."""

from __future__ import annotations

import os
import sys

from hftl.config import load_config
from hftl.recipe import run
from hftl.run.hooks import Hook


class StopOnRankOne(Hook):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, state) -> None:
        if int(os.environ.get("RANK", "0")) == 1 and state.global_step == self.step:
            state.should_stop, state.stop_reason = True, f"rank 1 stops at step {self.step}"


if __name__ == "__main__":
    run(load_config(None, sys.argv[2:]), hooks=[StopOnRankOne(int(sys.argv[1]))])
