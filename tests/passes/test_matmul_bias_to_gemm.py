"""matmul-bias-to-gemm: Linear layers (matmul + bias [+ activation]) become one gemm."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, assert_within, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import GemmOp, MatMulOp
from nnc.ir.ops_elementwise import AddOp, ExpOp, GeluOp, ReluOp, UnaryOp
from nnc.ir.ops_shape import ReshapeOp
from nnc.passes.fuse_activation import FuseActivationPass
from nnc.passes.matmul_bias_to_gemm import MatMulBiasToGemmPass

ACTS = {"none": None, "relu": ReluOp, "gelu": GeluOp, "exp": ExpOp}


@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    m=st.integers(1, 5),
    k=st.integers(1, 6),
    n=st.integers(1, 6),
    bias_rank=st.integers(0, 3),
    scalar_bias=st.booleans(),
    act=st.sampled_from(sorted(ACTS)),
    swap=st.booleans(),
    seed=seeds,
)
def test_linear_becomes_gemm_within_bound(batch, m, k, n, bias_rank, scalar_bias, act, swap, seed):
    rng = np.random.default_rng(seed)
    a_shape = (*batch, m, k)
    bias_shape = (1,) * bias_rank if scalar_bias else (1,) * max(bias_rank - 1, 0) + (n,)
    bias_shape = bias_shape[-len(a_shape) :] if len(bias_shape) > len(a_shape) else bias_shape
    w, bias = rand(rng, (k, n)), rand(rng, bias_shape)
    b = GraphBuilder()
    a = b.add_input("a", a_shape)
    y = b.insert(MatMulOp(a, b.constant(w)))
    y = b.insert(AddOp(b.constant(bias), y) if swap else AddOp(y, b.constant(bias)))
    if ACTS[act] is not None:
        y = b.insert(ACTS[act](y))
    before = b.finish([("y", y)])

    after = apply_pass(before, MatMulBiasToGemmPass())

    assert count(after, MatMulOp, AddOp) == 0 and count(after, GemmOp) == 1
    assert count(after, ReshapeOp) == (2 if batch else 0)
    if batch and act in ("relu", "gelu"):  # sunk past the reshape: next to the gemm
        (unary,) = [op for op in after.walk() if isinstance(op, UnaryOp)]
        assert isinstance(unary.x.owner, GemmOp)
        fused = apply_pass(after, FuseActivationPass())
        assert count(fused, UnaryOp) == 0
    ain = rand(rng, a_shape, -2, 2)
    y0, y1 = interpret(before, [ain])[0], interpret(after, [ain])[0]
    assert y0.shape == y1.shape
    lip = {"none": 1.0, "relu": 1.0, "gelu": 1.13, "exp": float(np.exp(2 * k + 1))}[act]
    mag = np.abs(ain).astype(np.float64) @ np.abs(w) + np.abs(bias)
    assert_within(y0, y1, 4 * U * (lip * mag + np.abs(y0)))


def test_inapplicable_inputs_are_left_unchanged():
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    a = b.add_input("a", (1, 4, 3))
    c = b.add_input("c", (5,))
    y1 = b.insert(AddOp(b.insert(MatMulOp(a, b.constant(rand(rng, (3, 5))))), c))  # bias input
    wb = rand(rng, (2, 3, 5))  # batched B
    y2 = b.insert(AddOp(b.insert(MatMulOp(a, b.constant(wb))), b.constant(rand(rng, (5,)))))
    y3 = b.insert(  # bias per row, not per column
        AddOp(b.insert(MatMulOp(a, b.constant(rand(rng, (3, 5))))), b.constant(rand(rng, (4, 1))))
    )
    mm = b.insert(MatMulOp(a, b.constant(rand(rng, (3, 5)))))  # two users
    y4 = b.insert(AddOp(mm, b.constant(rand(rng, (5,)))))
    grows = b.constant(rand(rng, (2, 1, 1, 5)))  # broadcasts the result to 4 dims
    y5 = b.insert(AddOp(grows, b.insert(MatMulOp(a, b.constant(rand(rng, (3, 5)))))))
    module = b.finish([("y1", y1), ("y2", y2), ("y3", y3), ("mm", mm), ("y4", y4), ("y5", y5)])
    assert text(apply_pass(module, MatMulBiasToGemmPass())) == text(module)


@pytest.mark.parametrize("rank", [2, 3])
def test_layer_attributes_carry_over(rank):
    from xdsl.dialects.builtin import StringAttr

    rng = np.random.default_rng(4)
    b = GraphBuilder()
    a = b.add_input("a", (1,) * (rank - 2) + (4, 3))
    mm = MatMulOp(a, b.constant(rand(rng, (3, 5))))
    mm.attributes["nn.name"] = StringAttr("fc1")
    y = b.insert(AddOp(b.insert(mm), b.constant(rand(rng, (5,)))))
    after = apply_pass(b.finish([("y", y)]), MatMulBiasToGemmPass())
    (gemm,) = [op for op in after.walk() if isinstance(op, GemmOp)]
    assert gemm.attributes["nn.name"] == StringAttr("fc1")


@pytest.mark.parametrize("s, k, n", [(5, 7, 9), (33, 64, 17)])
def test_compiled_gemm_is_bitwise_equal_to_compiled_matmul_add_gelu(s, k, n):
    """The backend claim of the contract: same kernel rows, one rounding for the bias."""
    from onnx import TensorProto, helper, numpy_helper

    import nnc

    rng = np.random.default_rng(s)
    w, bias = rand(rng, (k, n)), rand(rng, (n,))
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"]),
        helper.make_node("Add", ["m", "B"], ["a"]),
        helper.make_node("Gelu", ["a"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, s, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, s, n])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    plain = nnc.compile(model, passes="specialize-shapes")
    fused = nnc.compile(model, passes="specialize-shapes,matmul-bias-to-gemm,fuse-activation")
    (gemm,) = [op for op in fused.module.walk() if isinstance(op, GemmOp)]
    assert gemm.prop("activation") == "gelu" and count(fused.module, UnaryOp, AddOp) == 0
    x = rand(rng, (1, s, k), -2, 2)
    np.testing.assert_array_equal(plain.run([x])[0], fused.run([x])[0])
