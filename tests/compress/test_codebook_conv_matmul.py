"""``codebook-kernels`` on 1x1 convs (``layout="conv1x1"``) and on matmuls by a constant:
the rewrite is exact (interpreter == the dense op) and the native kernel, in every
lookup mode this host runs, matches the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.backends.llvm.kernels import codebook_gemm as kernel
from nnc.ir import GraphBuilder
from nnc.ir.dialect import make_context
from nnc.ir.interpret import interpret
from nnc.ir.ops_codebook import CodebookGemmOp
from nnc.ir.ops_compute import ConvOp, MatMulOp
from nnc.passes.codebook_kernels import CodebookKernelsPass


def _book(rng, values: int) -> np.ndarray:
    return rng.uniform(-1, 1, values).astype(np.float32)


def _apply(module):
    out = module.clone()
    CodebookKernelsPass(min_params=0).apply(make_context(), out)
    out.verify()
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 37),
    c=st.integers(1, 20),
    hw=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    batch=st.integers(1, 3),
    values=st.sampled_from([3, 16, 100]),
    bias=st.booleans(),
)
def test_conv1x1_rewrite_is_exact(seed, n, c, hw, batch, values, bias):
    rng = np.random.default_rng(seed)
    w = _book(rng, values)[rng.integers(0, values, (n, c, 1, 1))]
    b = GraphBuilder()
    x = b.add_input("x", (batch, c, *hw))
    bc = b.constant(rng.standard_normal(n).astype(np.float32)) if bias else None
    y = b.insert(ConvOp(x, b.constant(w), bc, None, strides=(1, 1), pads=(0, 0, 0, 0)))
    before = b.finish([("y", y)])
    after = _apply(before)
    (op,) = [o for o in after.walk() if isinstance(o, CodebookGemmOp)]
    assert op.prop("layout") == "conv1x1"
    np.testing.assert_array_equal(op.dense_weight(), w.reshape(n, c))
    xin = rng.standard_normal((batch, c, *hw)).astype(np.float32)
    np.testing.assert_allclose(
        interpret(after, [xin])[0], interpret(before, [xin])[0], rtol=1e-5, atol=1e-5
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 37),
    k=st.integers(1, 20),
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=3),
)
def test_matmul_by_constant_rewrite_is_exact(seed, n, k, lead):
    rng = np.random.default_rng(seed)
    w = _book(rng, 16)[rng.integers(0, 16, (k, n))]  # B (K, N): W = B^T
    b = GraphBuilder()
    x = b.add_input("x", (*lead, k))
    before = b.finish([("y", b.insert(MatMulOp(x, b.constant(w))))])
    after = _apply(before)
    (op,) = [o for o in after.walk() if isinstance(o, CodebookGemmOp)]
    np.testing.assert_array_equal(op.dense_weight(), w.T)
    xin = rng.standard_normal((*lead, k)).astype(np.float32)
    np.testing.assert_allclose(
        interpret(after, [xin])[0], interpret(before, [xin])[0], rtol=1e-5, atol=1e-5
    )


def test_strided_padded_or_grouped_convs_stay_dense():
    rng = np.random.default_rng(0)
    for kw in ({"strides": (2, 2)}, {"pads": (1, 1, 1, 1)}, {"group": 2}):
        b = GraphBuilder()
        x = b.add_input("x", (1, 4, 6, 6))
        w = _book(rng, 4)[rng.integers(0, 4, (8, 4 // kw.get("group", 1), 1, 1))]
        opts = {"strides": (1, 1), "pads": (0, 0, 0, 0), **kw}
        before = b.finish([("y", b.insert(ConvOp(x, b.constant(w), None, None, **opts)))])
        assert not [o for o in _apply(before).walk() if isinstance(o, CodebookGemmOp)]


def _onnx(kind: str, rng, values: int, batch: int):
    if kind == "conv":
        n, c, h, w_ = 35, 19, 5, 7
        w = _book(rng, values)[rng.integers(0, values, (n, c, 1, 1))]
        nodes = [
            helper.make_node("Conv", ["x", "w", "b"], ["y0"]),
            helper.make_node("Relu", ["y0"], ["y"]),
        ]
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(_book(rng, n), "b")]
        x_shape, y_shape = [batch, c, h, w_], [batch, n, h, w_]
    else:
        k, n = 23, 41
        w = _book(rng, values)[rng.integers(0, values, (k, n))]
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
        inits = [numpy_helper.from_array(w, "w")]
        x_shape, y_shape = [batch, 3, k], [batch, 3, n]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, x_shape


def _modes():
    from llvmlite import ir

    feats = kernel.target_features(kernel.module_target(ir.Module()))
    return ["scalar"] + [m for m, f in (("avx2", "avx2"), ("avx512", "avx512f")) if f in feats]


@pytest.mark.parametrize(
    "kind, mode, values, batch",
    [("conv", m, 16, 2) for m in _modes()]
    + [("conv", "auto", 120, 1), ("matmul", "auto", 7, 2), ("matmul", "scalar", 16, 1)],
)
def test_compiled_conv_and_matmul_match_interpreter(kind, mode, values, batch, monkeypatch):
    if mode != "auto":
        monkeypatch.setattr(kernel, "lut_mode", lambda module, bits: mode)
    rng = np.random.default_rng(values + batch)
    model, x_shape = _onnx(kind, rng, values, batch)
    m = nnc.compile(model, threads=1, passes="codebook-kernels{min-params=0},fuse-activation")
    (op,) = [o for o in m.module.walk() if isinstance(o, CodebookGemmOp)]
    assert op.prop("layout") == ("conv1x1" if kind == "conv" else "gemm")
    assert op.prop("activation") == ("relu" if kind == "conv" else "none")
    x = rng.standard_normal(x_shape).astype(np.float32)
    np.testing.assert_allclose(m.run([x])[0], interpret(m.module, [x])[0], rtol=1e-4, atol=1e-4)


def test_gemm_only_leaves_convs_and_matmuls_dense():
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.add_input("x", (1, 8, 2, 2))
    w = _book(rng, 4)[rng.integers(0, 4, (8, 8, 1, 1))]
    y = b.insert(ConvOp(x, b.constant(w), None, None, strides=(1, 1), pads=(0, 0, 0, 0)))
    z = b.insert(
        MatMulOp(b.insert(ConvOp(y, b.constant(w), None, None)), b.constant(w[:2, :2, 0, 0]))
    )
    before = b.finish([("z", z)])
    after = before.clone()
    CodebookKernelsPass(min_params=0, gemm_only=True).apply(make_context(), after)
    assert not [o for o in after.walk() if isinstance(o, CodebookGemmOp)]
    assert len([o for o in _apply(before).walk() if isinstance(o, CodebookGemmOp)]) == 3
