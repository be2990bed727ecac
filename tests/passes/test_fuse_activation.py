"""fuse-activation: bias/residual adds and activations move into conv/gemm epilogues."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, assert_within, conv_geometries, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp, GemmOp
from nnc.ir.ops_elementwise import (
    AddOp,
    ClipOp,
    ExpOp,
    GeluOp,
    GeluTanhOp,
    HardSigmoidOp,
    HardSwishOp,
    LeakyReluOp,
    ReluOp,
    SigmoidOp,
    TanhOp,
    UnaryOp,
)
from nnc.passes.fuse_activation import FuseActivationPass

#: activation kind -> (builder from a value, Lipschitz constant)
ACTIVATIONS = {
    "relu": (lambda v, a, b: ReluOp(v), 1.0),
    "clip": (lambda v, a, b: ClipOp(v, min=-abs(a), max=abs(b)), 1.0),
    "leaky_relu": (lambda v, a, b: LeakyReluOp(v, alpha=a), None),
    "sigmoid": (lambda v, a, b: SigmoidOp(v), 1.0),
    "hard_sigmoid": (lambda v, a, b: HardSigmoidOp(v, alpha=a, beta=b), None),
    "hard_swish": (lambda v, a, b: HardSwishOp(v), 1.5),
    "tanh": (lambda v, a, b: TanhOp(v), 1.0),
    "gelu": (lambda v, a, b: GeluOp(v), 1.13),
    "gelu_tanh": (lambda v, a, b: GeluTanhOp(v), 1.13),
}
ADDS = ["none", "channel", "channel_4d", "scalar", "residual_input", "residual_conv"]


def add_operand(b: GraphBuilder, kind: str, rng, geom, out_shape):
    """The other operand of the add after the conv, and its magnitude (for the bound)."""
    if kind in ("channel", "channel_4d", "scalar"):
        shape = {"channel": (geom.m, 1, 1), "channel_4d": (1, geom.m, 1, 1), "scalar": (1,)}[kind]
        k = rand(rng, shape)
        return b.constant(k), np.abs(k), None
    if kind == "residual_input":
        return b.add_input("r", out_shape), None, rand(rng, out_shape)
    w2 = rand(rng, geom.w_shape)
    return b.insert(ConvOp(b.block.args[0], b.constant(w2), None, None, **geom.props())), w2, None


@given(
    geom=conv_geometries(),
    seed=seeds,
    add=st.sampled_from(ADDS),
    act=st.sampled_from(sorted(ACTIVATIONS)),
    with_bias=st.booleans(),
    swap=st.booleans(),
)
def test_conv_epilogue_fusion_within_bound(geom, seed, add, act, with_bias, swap):
    rng = np.random.default_rng(seed)
    alpha, beta = (float(v) for v in rng.uniform(-2, 2, 2))
    w = rand(rng, geom.w_shape)
    bias = rand(rng, geom.m) if with_bias else None
    b = GraphBuilder()
    x = b.add_input("x", geom.x_shape)
    y = b.insert(
        ConvOp(x, b.constant(w), None if bias is None else b.constant(bias), None, **geom.props())
    )
    out_shape = tuple(y.type.get_shape())
    mag_extra, inputs = 0.0, [rand(rng, geom.x_shape, -2, 2)]
    if add != "none":
        other, extra, r_in = add_operand(b, add, rng, geom, out_shape)
        y = b.insert(AddOp(other, y) if swap else AddOp(y, other))
        if r_in is not None:
            inputs.append(r_in)
            mag_extra = np.abs(r_in)
        elif add == "residual_conv":
            mag_extra = geom.abs_conv(inputs[0], extra)
        else:
            mag_extra = extra
    make, lipschitz = ACTIVATIONS[act]
    before = b.finish([("y", b.insert(make(y, alpha, beta)))])

    after = apply_pass(before, FuseActivationPass())

    assert count(after, AddOp, UnaryOp) == 0 < count(before, UnaryOp)
    assert {op.prop("activation") for op in after.walk() if isinstance(op, ConvOp)} >= {act}
    y0, y1 = interpret(before, inputs)[0], interpret(after, inputs)[0]
    if add == "none":
        np.testing.assert_array_equal(y0, y1)  # activation-only fusion is bitwise exact
        return
    lip = lipschitz if lipschitz is not None else max(1.0, abs(alpha))
    mag = geom.abs_conv(inputs[0], w) + mag_extra
    if bias is not None:
        mag = mag + np.abs(bias).reshape(1, -1, 1, 1)
    assert_within(y0, y1, 4 * U * (lip * mag + np.abs(y0)))


@given(
    m=st.integers(1, 4),
    k=st.integers(1, 4),
    n=st.integers(1, 4),
    seed=seeds,
    act=st.sampled_from(sorted(ACTIVATIONS)),
    c_shape=st.sampled_from([(), (1,), "n", "mn"]),
)
def test_gemm_bias_and_activation_fuse(m, k, n, seed, act, c_shape):
    rng = np.random.default_rng(seed)
    shape = {"n": (n,), "mn": (m, n)}.get(c_shape, c_shape)
    bmat, c = rand(rng, (k, n)), rand(rng, shape)
    b = GraphBuilder()
    a = b.add_input("a", (m, k))
    g = b.insert(GemmOp(a, b.constant(bmat), None, alpha=0.5))
    y = b.insert(AddOp(g, b.constant(c)))
    make, lipschitz = ACTIVATIONS[act]
    before = b.finish([("y", b.insert(make(y, 0.3, 0.6)))])

    after = apply_pass(before, FuseActivationPass())

    assert count(after, AddOp, UnaryOp) == 0 and count(after, GemmOp) == 1
    ain = rand(rng, (m, k), -2, 2)
    y0, y1 = interpret(before, [ain])[0], interpret(after, [ain])[0]
    mag = 0.5 * np.abs(ain).astype(np.float64) @ np.abs(bmat) + np.abs(c)
    assert_within(y0, y1, 4 * U * ((lipschitz or 1.0) * mag + np.abs(y0)))


def test_inapplicable_inputs_are_left_unchanged():
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.add_input("x", (1, 2, 4, 4))
    c1 = b.insert(ConvOp(x, b.constant(rand(rng, (2, 2, 1, 1))), None, None))
    e = b.insert(ExpOp(c1))  # not an epilogue kind
    c2 = b.insert(ConvOp(x, b.constant(rand(rng, (2, 2, 1, 1))), None, None))
    r = b.insert(ReluOp(c2))  # c2 has two users
    c3 = b.insert(ConvOp(x, b.constant(rand(rng, (2, 2, 1, 1))), None, None))
    s = b.insert(AddOp(c3, b.constant(rand(rng, (4,)))))  # scales the W axis
    c4 = b.insert(ConvOp(x, b.constant(rand(rng, (2, 2, 1, 1))), None, None, activation="relu"))
    t = b.insert(TanhOp(c4))  # already has an activation
    module = b.finish([("e", e), ("r", r), ("c2", c2), ("s", s), ("t", t)])
    assert text(apply_pass(module, FuseActivationPass())) == text(module)


def test_fused_op_keeps_discardable_attributes():
    """Layer names and compression records on the conv survive bias, residual and act fusion."""
    from xdsl.dialects.builtin import StringAttr

    rng = np.random.default_rng(2)
    b = GraphBuilder()
    x = b.add_input("x", (1, 2, 4, 4))
    conv = ConvOp(x, b.constant(rand(rng, (2, 2, 1, 1))), None, None)
    conv.attributes["nn.name"] = StringAttr("stem")
    y = b.insert(AddOp(b.insert(conv), b.constant(rand(rng, (2, 1, 1)))))
    module = b.finish([("y", b.insert(ReluOp(y)))])

    after = apply_pass(module, FuseActivationPass())

    (fused,) = [op for op in after.walk() if isinstance(op, ConvOp)]
    assert fused.prop("activation") == "relu" and fused.operand_named("bias") is not None
    assert fused.attributes["nn.name"] == StringAttr("stem")
