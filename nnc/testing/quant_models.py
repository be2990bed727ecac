"""Small models for the mixed-precision tests: an MLP with one deliberately fragile layer.

``fragile_mlp(sizes, batch)``: ``Gemm(transB=1)+Relu`` layers, then a last ``Gemm``
(input ``x``, output ``y``), seeded weights ~N(0, 0.3^2), biases 0.1. The **first** gemm
has one outlier weight per output row (input feature 0, 500x the others) and
``fragile_calibration`` makes that input feature 500x smaller, so the float model is
ordinary while int8 ruins that layer: its per-channel weight scales round every other
weight to 0 (and the input's scale rounds feature 0 to 0). Quantizing any other layer
alone costs about 1 % output error.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTLIER = 500.0


def fragile_mlp(sizes: tuple[int, ...] = (16, 32, 32, 8), batch: int = 4) -> onnx.ModelProto:
    """The MLP ``sizes[0] -> ... -> sizes[-1]`` described in the module docstring."""
    rng = np.random.default_rng(0)
    ws = [
        (rng.standard_normal((n, k)) * 0.3).astype(np.float32)
        for k, n in zip(sizes[:-1], sizes[1:])
    ]
    ws[0][:, 0] *= OUTLIER
    inits, nodes, x = [], [], "x"
    for i, w in enumerate(ws):
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        inits.append(numpy_helper.from_array(np.full(w.shape[0], 0.1, np.float32), f"b{i}"))
        last = i == len(ws) - 1
        out = "y" if last else f"g{i}"
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [out], transB=1))
        x = out
        if not last:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "fragile_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, sizes[-1]])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def fragile_calibration(n: int = 16, features: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    """``{"x": (n, features)}`` standard normal samples, feature 0 divided by 500."""
    x = np.random.default_rng(seed).standard_normal((n, features)).astype(np.float32)
    x[:, 0] /= OUTLIER
    return {"x": x}
