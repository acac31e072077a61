"""Weights out of ONNX graphs exported from PyTorch: the exporter keeps biases under their module names but stores
linear layers' weights as anonymous ``onnx::MatMul_*`` initializers; this names them again."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from hftl.zoo import ZooError

if TYPE_CHECKING:
    import onnx


def linear_weights(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Name the anonymous MatMul weights by the bias that follows them.

    The exporter stored each linear layer as ``MatMul(x, W)`` (``W`` in x out, named ``onnx::MatMul_*``)
    followed by ``Add(., NAME.bias)``; this returns ``{NAME.weight: W.T}`` in HF's out x in layout.

    Raises:
        ZooError: A MatMul weight has no single ``...bias`` Add after it, or two weights claim one bias.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    out: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        biases = [
            name
            for add in consumers[node.output[0]]
            if add.op_type == "Add"
            for name in add.input
            if name in inits and name.endswith(".bias")
        ]
        if len(biases) != 1:
            raise ZooError(
                f"MatMul weight {node.input[1]!r}: expected one '.bias' Add after it, found {biases}"
            )
        weight = biases[0][: -len(".bias")] + ".weight"
        if weight in out:
            raise ZooError(f"two MatMul weights map to {weight!r}")
        out[weight] = numpy_helper.to_array(inits[node.input[1]]).T.copy()
    return out


def prefixed_state(graph: onnx.GraphProto, prefix: str) -> dict[str, np.ndarray]:
    """The module's parameters held by the graph under ``prefix``, named without it (biases, norms, embeddings and
    the linear weights named by :func:`linear_weights`)."""
    from onnx import numpy_helper

    state = {t.name[len(prefix) :]: numpy_helper.to_array(t) for t in graph.initializer if t.name.startswith(prefix)}
    state.update({n[len(prefix) :]: w for n, w in linear_weights(graph).items() if n.startswith(prefix)})
    return state
