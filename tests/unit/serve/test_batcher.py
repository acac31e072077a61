"""The dynamic batcher on its own: grouping, per-request answers, failure isolation, the bounded queue."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from hftl.serve.batcher import DynamicBatcher, QueueFull


class Recorder:
    """A model that doubles its input and remembers each batch's size and each preprocessing call's inputs.

    Preprocessing refuses a string (an unreadable input); the model run fails on a negative value (a batch-wide failure).
    """

    def __init__(self, gate: threading.Event | None = None):
        self.batches: list[int] = []
        self.prepared: list[list] = []
        self.gate = gate

    def prepare(self, inputs: list) -> dict[str, np.ndarray]:
        self.prepared.append(list(inputs))
        bad = [i for i, v in enumerate(inputs) if isinstance(v, str)]
        if bad:
            raise ValueError(f"inputs[{bad[0]}]: not a number")
        return {"x": np.asarray(inputs, dtype=np.float32)}

    def __call__(self, features):
        if self.gate is not None:
            self.gate.wait(5)
        x = features["x"]
        if (x < 0).any():
            raise ValueError("negative input")
        self.batches.append(len(x))
        return x * 2.0


def features(*values) -> list:
    return list(values)


async def with_batcher(model, coro_fn, **kw):
    batcher = DynamicBatcher(model.prepare, model, **{"max_batch": 8, "max_wait_s": 0.2, "max_queue": 16, **kw})
    batcher.start()
    try:
        return await coro_fn(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_a_batch_and_get_their_own_rows():
    model = Recorder()

    async def go(b):
        return await asyncio.gather(*(b.submit(features(i, i + 0.5)) for i in range(4)))

    results = asyncio.run(with_batcher(model, go))
    assert model.batches == [8]
    assert model.prepared == [[0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]]  # one preprocessing call for the whole batch
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, [2 * i, 2 * i + 1])


def test_max_batch_one_runs_each_request_alone():
    model = Recorder()

    async def go(b):
        return await asyncio.gather(*(b.submit(features(i)) for i in range(3)))

    assert [float(r[0]) for r in asyncio.run(with_batcher(model, go, max_batch=1))] == [0.0, 2.0, 4.0]
    assert model.batches == [1, 1, 1]


def test_a_bad_request_fails_alone():
    model = Recorder()

    async def go(b):
        return await asyncio.gather(b.submit(features(1)), b.submit(features(-1)), b.submit(features(3)),
                                    return_exceptions=True)  # fmt: skip

    good, bad, other = asyncio.run(with_batcher(model, go))
    assert isinstance(bad, ValueError)
    assert float(good[0]) == 2.0 and float(other[0]) == 6.0


def test_an_unreadable_input_fails_only_its_request_and_the_others_still_share_a_batch():
    model = Recorder()

    async def go(b):
        return await asyncio.gather(b.submit(features(1, 2)), b.submit(features(5, "corrupt")), b.submit(features(3)),
                                    return_exceptions=True)  # fmt: skip

    good, bad, other = asyncio.run(with_batcher(model, go))
    assert isinstance(bad, ValueError) and str(bad) == "inputs[1]: not a number"  # indexed within its own request
    np.testing.assert_array_equal(good, [2.0, 4.0])
    np.testing.assert_array_equal(other, [6.0])
    assert model.batches == [3]  # the two good requests ran together, once
    # the batch's call, then each request alone; the good ones run from their own features, not preprocessed again
    assert model.prepared == [[1, 2, 5, "corrupt", 3], [1, 2], [5, "corrupt"], [3]]


class PaddingRecorder(Recorder):
    """Preprocessing that pads each call's rows to its input count (as a tokenizer padding to the longest text does)."""

    def prepare(self, inputs: list) -> dict[str, np.ndarray]:
        column = super().prepare(inputs)["x"][:, None]
        return {"x": np.pad(column, ((0, 0), (0, len(inputs) - 1)))}

    def __call__(self, features):
        return super().__call__({"x": features["x"][:, 0]})


def test_requests_whose_features_do_not_stack_are_preprocessed_again_together():
    model = PaddingRecorder()

    async def go(b):
        return await asyncio.gather(b.submit(features(1, 2)), b.submit(features("corrupt")), b.submit(features(3)),
                                    return_exceptions=True)  # fmt: skip

    good, bad, other = asyncio.run(with_batcher(model, go))
    assert isinstance(bad, ValueError)
    np.testing.assert_array_equal(good, [2.0, 4.0])
    np.testing.assert_array_equal(other, [6.0])
    assert model.batches == [3] and model.prepared[-1] == [1, 2, 3]  # widths 2 and 1 do not stack: one call together


def test_full_queue_refuses_at_once_and_recovers():
    gate = threading.Event()
    model = Recorder(gate)

    async def go(b):
        first = asyncio.ensure_future(b.submit(features(*range(4))))  # runs, blocked on the gate
        await asyncio.sleep(0.1)
        waiting = asyncio.ensure_future(b.submit(features(*range(4))))  # waits in the queue (4 of 4)
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await b.submit(features(1))
        assert not b.has_room(1) and b.pending_rows == 4
        gate.set()
        await asyncio.gather(first, waiting)
        return await b.submit(features(5))

    assert float(asyncio.run(with_batcher(model, go, max_batch=4, max_queue=4, max_wait_s=0.0))[0]) == 10.0


def test_reserved_room_counts_while_decoding_and_is_used_once():
    gate = threading.Event()
    model = Recorder(gate)

    async def go(b):
        assert b.reserve(3) and not b.reserve(2)  # 3 of 4 held by a request still decoding: a 2-input burst is refused
        assert b.reserve(1) and not b.has_room(1)
        b.release(1)  # a request that failed to decode gives its room back
        running = asyncio.ensure_future(b.submit(features(1, 2, 3), reserved=True))
        await asyncio.sleep(0.1)  # taken into a batch (blocked on the gate): its room is free again, not held twice
        assert b.reserved_rows == 0 and b.pending_rows == 0 and b.reserve(4)
        b.release(4)
        gate.set()
        return await running

    out = asyncio.run(with_batcher(model, go, max_batch=4, max_queue=4, max_wait_s=0.0))
    np.testing.assert_array_equal(out, [2.0, 4.0, 6.0])


def test_serve_command_refuses_bad_targets_and_settings_before_starting(tmp_path, capsys):
    from hftl.cli import main

    assert main(["serve", str(tmp_path)]) == 2
    assert f"{tmp_path} is not an hftl export" in capsys.readouterr().err
    (tmp_path / "hftl_config.yaml").write_text("modality: text\n")
    assert main(["serve", str(tmp_path)]) == 2
    assert "holds no model file a serving runtime reads (looked for model.onnx, openvino_model.xml)" in capsys.readouterr().err
    (tmp_path / "model.onnx").write_bytes(b"")  # settings are checked before the model is read
    assert main(["serve", str(tmp_path), "--max-batch", "64", "--max-queue", "8"]) == 2
    assert "--max-queue (8) must be >= --max-batch (64)" in capsys.readouterr().err
