"""A small helper for building seeded ONNX graphs with ``onnx.helper`` + numpy.

``GraphBuilder`` collects nodes and initializers, hands out unique tensor names and
offers layer-level helpers (Conv, BatchNormalization, Gemm, ...) whose weights are
drawn from a seeded ``np.random.Generator`` with He/Kaiming or Xavier scaling, so
activations stay O(1) through deep networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_checked_model(
    graph: onnx.GraphProto, opset: int, *, producer: str = "nnc.testing.model_zoo"
) -> onnx.ModelProto:
    """Wrap ``graph`` in a model with the default-domain ``opset``, infer shapes, check it.

    The IR version is the minimum one the opset needs (so older runtimes load it).
    The returned model carries inferred ``value_info`` for every intermediate tensor and
    has passed ``onnx.checker.check_model(full_check=True)``.
    """
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name=producer)
    model.ir_version = helper.find_min_ir_version_for(opsets)
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


class GraphBuilder:
    """Accumulates ONNX nodes/initializers; weights come from ``np.random.default_rng(seed)``."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    # ----------------------------------------------------------------- naming / raw nodes
    def fresh(self, base: str) -> str:
        """A tensor/node name based on ``base`` that has not been used yet."""
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def const(self, name: str, value: np.ndarray | float | Sequence[int], dtype=None) -> str:
        """Add an initializer (float32 unless ``dtype`` or an integer array says otherwise)."""
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        name = self.fresh(name)
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def node(
        self,
        op: str,
        inputs: Sequence[str],
        name: str,
        *,
        n_out: int = 1,
        **attrs,
    ) -> str:
        """Append ``op`` named ``name``; returns its (first) output, also called ``name``."""
        node_name = self.fresh(name)
        outputs = [node_name] + [self.fresh(f"{node_name}_out{i}") for i in range(1, n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outputs, name=node_name, **attrs))
        return outputs[0]

    def rename(self, tensor: str, new: str) -> str:
        """Rename tensor ``tensor`` (e.g. to a graph output name) everywhere; returns ``new``."""
        if new in self._names:
            raise ValueError(f"name {new!r} already used")
        self._names.add(new)
        for n in self.nodes:
            for seq in (n.input, n.output):
                for i, v in enumerate(seq):
                    if v == tensor:
                        seq[i] = new
        return new

    def graph(
        self,
        name: str,
        inputs: Sequence[tuple[str, Sequence[int]]],
        outputs: Sequence[tuple[str, Sequence[int]]],
    ) -> onnx.GraphProto:
        """The finished float32 graph with the given (name, shape) inputs and outputs."""

        def vi(n: str, shape: Sequence[int]) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape))

        return helper.make_graph(
            self.nodes,
            name,
            [vi(n, s) for n, s in inputs],
            [vi(n, s) for n, s in outputs],
            initializer=self.initializers,
        )

    # ------------------------------------------------------------------- weight sampling
    def he(self, shape: Sequence[int], fan_in: int, gain: float = 2.0) -> np.ndarray:
        """Kaiming-normal weights: N(0, gain / fan_in) (gain 2 for ReLU, 1 for linear)."""
        std = np.sqrt(gain / fan_in)
        return (self.rng.standard_normal(tuple(shape)) * std).astype(np.float32)

    def small(self, shape: Sequence[int], std: float = 0.1) -> np.ndarray:
        """Small zero-centred values (biases)."""
        return (self.rng.standard_normal(tuple(shape)) * std).astype(np.float32)

    # ------------------------------------------------------------------------- layers
    def conv(
        self,
        x: str,
        name: str,
        cin: int,
        cout: int,
        kernel: int,
        *,
        stride: int = 1,
        pad: int | None = None,
        group: int = 1,
        bias: bool = True,
        gain: float = 2.0,
    ) -> str:
        """A square Conv (``pad`` defaults to ``kernel // 2``) with He-initialised weights."""
        pad = kernel // 2 if pad is None else pad
        fan_in = cin // group * kernel * kernel
        w = self.const(
            f"{name}.weight", self.he((cout, cin // group, kernel, kernel), fan_in, gain)
        )
        ins = [x, w]
        if bias:
            ins.append(self.const(f"{name}.bias", self.small((cout,))))
        return self.node(
            "Conv",
            ins,
            name,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            dilations=[1, 1],
            group=group,
        )

    def batchnorm(
        self, x: str, name: str, channels: int, *, gamma: tuple[float, float] = (0.6, 1.4)
    ) -> str:
        """Inference-mode BatchNormalization with non-trivial random statistics.

        ``running_mean`` ~ N(0, 0.2), ``running_var`` ~ U(0.5, 2), ``weight`` (scale)
        ~ U(*gamma), ``bias`` ~ N(0, 0.1), so folding BN into a Conv changes every weight.
        """
        rng = self.rng
        scale = rng.uniform(*gamma, size=channels).astype(np.float32)
        shift = self.small((channels,), 0.1)
        mean = self.small((channels,), 0.2)
        var = rng.uniform(0.5, 2.0, size=channels).astype(np.float32)
        ins = [
            x,
            self.const(f"{name}.weight", scale),
            self.const(f"{name}.bias", shift),
            self.const(f"{name}.running_mean", mean),
            self.const(f"{name}.running_var", var),
        ]
        return self.node("BatchNormalization", ins, name, epsilon=1e-5, momentum=0.9)

    def gemm(self, x: str, name: str, fin: int, fout: int, *, gain: float = 2.0) -> str:
        """``Gemm(x, W, b, transB=1)`` with ``W`` of shape (fout, fin), like torch Linear."""
        w = self.const(f"{name}.weight", self.he((fout, fin), fin, gain))
        b = self.const(f"{name}.bias", self.small((fout,)))
        return self.node("Gemm", [x, w, b], name, alpha=1.0, beta=1.0, transB=1)

    def linear_matmul(self, x: str, name: str, fin: int, fout: int, *, gain: float = 1.0) -> str:
        """``Add(MatMul(x, W), b)`` with ``W`` of shape (fin, fout): a transformer Linear."""
        w = self.const(f"{name}.weight", self.he((fin, fout), fin, gain))
        b = self.const(f"{name}.bias", self.small((fout,), 0.02))
        y = self.node("MatMul", [x, w], f"{name}.matmul")
        return self.node("Add", [y, b], f"{name}.add")

    def relu(self, x: str, name: str) -> str:
        return self.node("Relu", [x], name)
