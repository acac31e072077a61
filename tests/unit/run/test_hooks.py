"""Trainer hooks: a hook sees every step, evaluation and checkpoint, and can end a run cleanly from outside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hftl.config import load_config
from hftl.recipe import run
from hftl.run import checkpoints
from hftl.run.hooks import Hook


class Recorder(Hook):
    def __init__(self, stop_at_step: int | None = None, stop_at_eval: int | None = None) -> None:
        self.steps: list[int] = []
        self.evaluations: list[tuple[int, dict]] = []
        self.checkpoints: list[tuple[int, Path, bool]] = []
        self.max_steps: set[int] = set()
        self.stop_at_step, self.stop_at_eval = stop_at_step, stop_at_eval

    def on_step(self, state) -> None:
        self.steps.append(state.global_step)
        self.max_steps.add(state.max_steps)
        if state.global_step == self.stop_at_step:
            state.should_stop, state.stop_reason = True, f"told to stop at step {state.global_step}"

    def on_evaluate(self, state, metrics) -> None:
        self.evaluations.append((state.global_step, metrics))
        if len(self.evaluations) == self.stop_at_eval:
            state.should_stop, state.stop_reason = True, "pruned"

    def on_checkpoint(self, state, path) -> None:
        self.checkpoints.append((state.global_step, path, checkpoints.is_complete(path)))


def out_dir(overrides) -> Path:
    return Path(next(o for o in overrides if o.startswith("output.dir=")).split("=", 1)[1])


def test_a_hook_sees_every_step_evaluation_and_checkpoint(quick_overrides):
    hook = Recorder()
    results = run(load_config(None, [*quick_overrides, "method.name=full", "training.eval_steps=4"]), hooks=[hook])
    total = results["train"]["total_steps"]
    assert hook.steps == list(range(1, total + 1)) and hook.max_steps == {total}
    assert [step for step, _ in hook.evaluations] == [h["step"] for h in results["history"]]
    for (_, metrics), record in zip(hook.evaluations, results["history"], strict=True):
        assert metrics == {k.removeprefix("eval/"): v for k, v in record.items() if k.startswith("eval/")}
    # a checkpoint after every evaluation, each complete (committed) when the hook hears of it
    assert [(s, p.name, done) for s, p, done in hook.checkpoints] == [
        (s, f"step_{s:06d}", True) for s, _ in hook.evaluations
    ]
    assert not results["train"]["stopped_early"] and results["train"]["stop_reason"] == ""


@pytest.mark.parametrize("eval_steps", ["null", "4"], ids=["eval-per-epoch", "eval-every-4-steps"])
def test_a_hook_that_stops_at_step_k_ends_the_run_there(quick_overrides, eval_steps):
    hook = Recorder(stop_at_step=5)
    overrides = [*quick_overrides, "method.name=full", f"training.eval_steps={eval_steps}"]
    results = run(load_config(None, overrides), hooks=[hook])
    assert hook.steps == [1, 2, 3, 4, 5]
    saved = json.loads((out_dir(quick_overrides) / "results.json").read_text())
    assert saved["train"]["steps"] == 5 < saved["train"]["total_steps"]
    assert saved["train"]["stopped_early"] and saved["train"]["stop_reason"] == "told to stop at step 5"
    # ended as an early stop does: evaluated and checkpointed at the stop, best model scored on test
    assert saved["history"][-1]["step"] == 5 and hook.checkpoints[-1][0] == 5
    assert saved["eval"] and saved["test"]["accuracy"] == results["test"]["accuracy"]
    assert (out_dir(quick_overrides) / "model" / "model.safetensors").is_file()


def test_a_hook_can_prune_from_an_evaluation_and_lp_ft_ends_with_the_probe(quick_overrides):
    hook = Recorder(stop_at_eval=1)
    # the step-by-step probe (a probe on cached features takes no loop steps, so there is nothing to prune)
    results = run(load_config(None, [*quick_overrides, "method.name=lp_ft", "training.feature_cache=false"]), hooks=[hook])
    assert results["train"]["stop_reason"] == "pruned" and results["train"]["steps"] == 6  # one epoch of the probe
    assert len(results["history"]) == 1 and "phases" not in results["train"]
