"""fuse-gelu: decomposed erf/tanh GELU chains become one gelu op within the stated bound."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, assert_within, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_elementwise import (
    AddOp,
    BinaryOp,
    DivOp,
    ErfOp,
    GeluOp,
    GeluTanhOp,
    MulOp,
    PowOp,
    TanhOp,
)
from nnc.passes.fuse_gelu import FuseGeluPass

SQRT2 = math.sqrt(2.0)


def _k(b: GraphBuilder, value: float, rank: int = 0):
    return b.constant(np.full((1,) * rank, value, dtype=np.float32))


def _mul(b, p, q, swap):
    return b.insert(MulOp(q, p) if swap else MulOp(p, q))


def erf_chain(b: GraphBuilder, x, form: int, swaps: list[bool], rank: int):
    """One of the exporters' ways to write 0.5 x (1 + erf(x / sqrt 2))."""
    if form % 2:
        t = _mul(b, x, _k(b, 1 / SQRT2, rank), swaps[0])
    else:
        t = b.insert(DivOp(x, _k(b, SQRT2, rank)))
    e = b.insert(ErfOp(t))
    s = b.insert(AddOp(_k(b, 1.0, rank), e) if swaps[1] else AddOp(e, _k(b, 1.0, rank)))
    shape = form // 2
    if shape == 0:  # (x * s) * 0.5   (torch.onnx)
        return _mul(b, _mul(b, x, s, swaps[2]), _k(b, 0.5, rank), swaps[3])
    if shape == 1:  # (x * 0.5) * s
        return _mul(b, _mul(b, x, _k(b, 0.5, rank), swaps[2]), s, swaps[3])
    if shape == 2:  # x * (s * 0.5)
        return _mul(b, x, _mul(b, s, _k(b, 0.5, rank), swaps[2]), swaps[3])
    return b.insert(DivOp(_mul(b, x, s, swaps[2]), _k(b, 2.0, rank)))  # (x * s) / 2


def tanh_chain(b: GraphBuilder, x, use_pow: bool, swaps: list[bool]):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if use_pow:
        cube = b.insert(PowOp(x, _k(b, 3.0)))
    else:
        cube = _mul(b, _mul(b, x, x, False), x, swaps[0])
    inner = b.insert(AddOp(x, _mul(b, cube, _k(b, 0.044715), swaps[1])))
    t = b.insert(TanhOp(_mul(b, _k(b, math.sqrt(2 / math.pi)), inner, swaps[2])))
    s = b.insert(AddOp(t, _k(b, 1.0)))
    return _mul(b, _mul(b, _k(b, 0.5), x, swaps[3]), s, swaps[0])


@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    form=st.integers(0, 7),
    swaps=st.lists(st.booleans(), min_size=4, max_size=4),
    seed=seeds,
    scale=st.sampled_from([0.5, 3.0, 12.0]),
)
def test_erf_chain_becomes_gelu_within_bound(shape, form, swaps, seed, scale):
    b = GraphBuilder()
    x = b.add_input("x", shape)
    before = b.finish([("y", erf_chain(b, x, form, swaps, rank=len(shape) % 2))])

    after = apply_pass(before, FuseGeluPass())

    assert count(after, GeluOp) == 1 and count(after, BinaryOp, ErfOp) == 0
    xin = rand(np.random.default_rng(seed), shape, -scale, scale)
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    assert_within(y0, y1, 8 * U * np.abs(xin) + 4 * U * np.abs(y0))


@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    use_pow=st.booleans(),
    swaps=st.lists(st.booleans(), min_size=4, max_size=4),
    seed=seeds,
    scale=st.sampled_from([0.5, 3.0, 12.0]),
)
def test_tanh_chain_becomes_gelu_tanh_within_bound(shape, use_pow, swaps, seed, scale):
    b = GraphBuilder()
    x = b.add_input("x", shape)
    before = b.finish([("y", tanh_chain(b, x, use_pow, swaps))])

    after = apply_pass(before, FuseGeluPass())

    assert count(after, GeluTanhOp) == 1 and count(after, BinaryOp, TanhOp) == 0
    xin = rand(np.random.default_rng(seed), shape, -scale, scale)
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    assert_within(y0, y1, 8 * U * np.abs(xin) + 4 * U * np.abs(y0))


def test_near_misses_are_left_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (2, 3))
    # wrong constant (x / 2 inside erf)
    e = b.insert(ErfOp(b.insert(DivOp(x, _k(b, 2.0)))))
    s = b.insert(AddOp(e, _k(b, 1.0)))
    y1 = b.insert(MulOp(b.insert(MulOp(x, s)), _k(b, 0.5)))
    # erf output used twice
    e2 = b.insert(ErfOp(b.insert(DivOp(x, _k(b, SQRT2)))))
    s2 = b.insert(AddOp(e2, _k(b, 1.0)))
    y2 = b.insert(MulOp(b.insert(MulOp(x, s2)), _k(b, 0.5)))
    # the outer x is a different value than the one inside erf
    z = b.add_input("z", (2, 3))
    e3 = b.insert(ErfOp(b.insert(DivOp(x, _k(b, SQRT2)))))
    y3 = b.insert(MulOp(b.insert(MulOp(z, b.insert(AddOp(e3, _k(b, 1.0))))), _k(b, 0.5)))
    # a (2, 3) constant 0.5 is not one element
    e4 = b.insert(ErfOp(b.insert(DivOp(x, _k(b, SQRT2)))))
    half = b.constant(np.full((2, 3), 0.5, np.float32))
    y4 = b.insert(MulOp(b.insert(MulOp(x, b.insert(AddOp(e4, _k(b, 1.0))))), half))
    module = b.finish([("y1", y1), ("y2", y2), ("e2", e2), ("y3", y3), ("y4", y4)])
    assert text(apply_pass(module, FuseGeluPass())) == text(module)


def test_chain_feeding_on_a_broadcast_constant_is_declined():
    """A rank-3 constant 0.5 would make a (1, 1, 3) result from an x of shape (3,)."""
    b = GraphBuilder()
    x = b.add_input("x", (3,))
    e = b.insert(ErfOp(b.insert(DivOp(x, _k(b, SQRT2)))))
    y = b.insert(MulOp(b.insert(MulOp(x, b.insert(AddOp(e, _k(b, 1.0))))), _k(b, 0.5, 3)))
    module = b.finish([("y", y)])
    assert text(apply_pass(module, FuseGeluPass())) == text(module)


def test_compiled_gelu_ops_match_the_compiled_chains_within_bound():
    """The bound holds for nnc's own kernels too (the fused op's erf/tanh vs the chain's)."""
    from onnx import TensorProto, helper

    import nnc

    def const(name, v):
        return helper.make_tensor(name, TensorProto.FLOAT, [], [v])

    node = helper.make_node
    nodes = [
        node("Div", ["x", "s2"], ["t"]),
        node("Erf", ["t"], ["e"]),
        node("Add", ["e", "one"], ["a"]),
        node("Mul", ["x", "a"], ["p"]),
        node("Mul", ["p", "half"], ["y"]),
        node("Pow", ["x", "three"], ["x3"]),
        node("Mul", ["x3", "k"], ["kx3"]),
        node("Add", ["x", "kx3"], ["in"]),
        node("Mul", ["in", "r"], ["arg"]),
        node("Tanh", ["arg"], ["th"]),
        node("Add", ["th", "one"], ["a2"]),
        node("Mul", ["half", "x"], ["hx"]),
        node("Mul", ["hx", "a2"], ["y2"]),
    ]
    consts = {"s2": SQRT2, "one": 1.0, "half": 0.5, "three": 3.0, "k": 0.044715}
    consts["r"] = math.sqrt(2 / math.pi)
    graph = helper.make_graph(
        nodes,
        "gelus",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4096]) for n in ("y", "y2")],
        [const(n, v) for n, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    chain = nnc.compile(model, passes="specialize-shapes")
    fused = nnc.compile(model, passes="specialize-shapes,fuse-gelu")
    assert count(fused.module, GeluOp) == count(fused.module, GeluTanhOp) == 1
    x = rand(np.random.default_rng(0), (4096,), -12, 12)
    for y0, y1 in zip(chain.run([x]), fused.run([x])):
        assert_within(y0, y1, 8 * U * np.abs(x) + 4 * U * np.abs(y0))
