"""The compiled CSR kernel (``nn.sparse_gemm``) agrees with the interpreter, and the
stored weights really shrink (values in the weight blob + CSR indices in the kernel)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.ir.interpret import interpret
from nnc.ir.ops_sparse import SparseGemmOp


def _model(kind: str, rng, sparsity: float, batch: int = 1):
    if kind == "gemm":
        w = rng.standard_normal((48, 40)).astype(np.float32)
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y0"], transB=1)
        xs, ys, nb = [batch, 40], [batch, 48], 48
    else:
        w = rng.standard_normal((24, 16, 1, 1)).astype(np.float32)
        node = helper.make_node("Conv", ["x", "w", "b"], ["y0"], kernel_shape=[1, 1])
        xs, ys, nb = [batch, 16, 5, 3], [batch, 24, 5, 3], 24
    w[rng.random(w.shape) < sparsity] = 0
    relu = helper.make_node("Relu", ["y0"], ["y"])
    graph = helper.make_graph(
        [node, relu],
        kind,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, xs)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ys)],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(rng.standard_normal(nb).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, w, xs


@pytest.mark.parametrize("kind, batch", [("gemm", 1), ("gemm", 3), ("conv", 2)])
def test_compiled_sparse_kernel_matches_interpreter(kind, batch):
    rng = np.random.default_rng(1)
    model, w, xs = _model(kind, rng, 0.92, batch)
    dense = nnc.compile(model, threads=1)
    sparse = nnc.compile(model, threads=1, compress="sparse")
    assert sum(isinstance(op, SparseGemmOp) for op in sparse.module.walk()) == 1
    x = rng.standard_normal(xs).astype(np.float32)
    want = interpret(sparse.module, [x])[0]
    np.testing.assert_allclose(sparse.run([x])[0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dense.run([x])[0], want, rtol=1e-4, atol=1e-4)
    # Storage: nnz values + (N + 1 + nnz) int32 indices instead of N*K floats.
    nnz = np.count_nonzero(w)
    stored = nnz * 4 + (w.shape[0] + 1 + nnz) * 4
    assert stored < 0.25 * w.nbytes
    assert sparse.report.total_weight_bytes < dense.report.total_weight_bytes


def test_below_break_even_stays_dense():
    model, _, _ = _model("gemm", np.random.default_rng(2), 0.5)
    m = nnc.compile(model, threads=1, compress="sparse")
    assert not any(isinstance(op, SparseGemmOp) for op in m.module.walk())
