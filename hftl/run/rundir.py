"""The run directory: what it holds, safe writes into it, and the check that nothing finished gets overwritten.

    RUN/config.yaml        the fully resolved config
    RUN/results.json       run info, params, data sizes, train info, eval and test metrics
    RUN/skipped_samples.json  rows left out under data.on_bad_sample=skip: split, row, input, reason
    RUN/adapter/           PEFT adapter (method=lora)
    RUN/model/             merged model + tokenizer/processor, ready for from_pretrained
    RUN/checkpoints/       accelerate save_state folders for resume
    RUN/probe_phase/       method=lp_ft: the checkpoints of its probe phase
    RUN/logs/              tracker output (TensorBoard event files)
    RUN/onnx/              after `hftl export`
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hftl.errors import RunDirError

RESULTS = "results.json"
CONFIG = "config.yaml"
SKIPPED = "skipped_samples.json"
EXPORT_REPORT = "export_report.json"  # in each export folder (RUN/onnx/, RUN/openvino/): gates, latency, settings
_ARTEFACTS = ("results.json", "adapter", "model", "checkpoints", "probe_phase", "logs", "onnx", "config.yaml", SKIPPED,
              "evaluations")  # fmt: skip  (evaluations: `hftl evaluate` of the model being replaced)


def estimate_run_bytes(total_params: int, trainable_params: int, keep_checkpoints: int) -> int:
    """Disk a run needs at its peak, for fp32 weights: checkpoints plus the saved model.

    A checkpoint holds every weight, AdamW's two moments and the best weights of the trainable ones; a new checkpoint
    is written before the oldest is pruned, so ``keep_checkpoints + 1`` exist at once. Then adapter/ and model/.
    """
    checkpoint = total_params + 3 * trainable_params
    outputs = total_params + trainable_params
    # +10%: each file's header (safetensors names every tensor), the scheduler and RNG states; measured 5-8% on a
    # tiny BERT (tests/unit/run/test_rundir.py), where headers weigh most.
    return int(1.1 * 4 * ((keep_checkpoints + 1) * checkpoint + outputs))


def check_free_space(run_dir: Path, needed_bytes: int) -> None:
    """Raise before training when the run directory's file system cannot hold what the run will write.

    Raises:
        RunDirError: less free space than needed_bytes; says how much is free and what to do.
    """
    free = shutil.disk_usage(run_dir).free
    if free < needed_bytes:
        raise RunDirError(
            f"output.dir {run_dir}: {free / 2**30:.2f} GiB free, but this run writes about {needed_bytes / 2**30:.2f} GiB "
            "(checkpoints and the saved model). Free some space, choose an output.dir on another disk, "
            "or lower training.save_total_limit."
        )


def prepare_run_dir(run_dir: Path, *, overwrite: bool, resuming: bool) -> None:
    """Create run_dir, refusing to clobber a finished run unless asked to.

    Raises:
        RunDirError: run_dir holds a finished run (and neither overwrite nor resume was asked), or is not writable.
    """
    run_dir = Path(run_dir)
    if (run_dir / RESULTS).exists() and not (overwrite or resuming):
        raise RunDirError(
            f"{run_dir} holds a finished run ({RESULTS} exists). Choose another output.dir, "
            "or pass output.overwrite=true to replace it."
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"output.dir {run_dir} exists and is not a folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    # A real write, not os.access: access() says yes to root on a read-only bind mount or an immutable folder, and to
    # anyone on some network file systems whose server then refuses the write.
    try:
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".hftl-write-check-"):
            pass  # created and removed again: the folder takes writes
    except OSError as err:
        raise RunDirError(f"output.dir {run_dir} is not writable ({err.strerror})") from None
    if overwrite and not resuming:
        for name in _ARTEFACTS:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
