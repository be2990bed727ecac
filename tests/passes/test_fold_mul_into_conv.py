"""fold-mul-into-conv: a per-channel constant scale folds into conv weights and bias."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, assert_within, conv_geometries, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp
from nnc.ir.ops_elementwise import MulOp, ReluOp
from nnc.passes.fold_mul_into_conv import FoldMulIntoConvPass

SCALE_SHAPES = ["m11", "1m11", "1", "scalar"]


@given(
    geom=conv_geometries(),
    seed=seeds,
    with_bias=st.booleans(),
    scale_shape=st.sampled_from(SCALE_SHAPES),
    swap=st.booleans(),
)
def test_scale_folds_within_bound(geom, seed, with_bias, scale_shape, swap):
    rng = np.random.default_rng(seed)
    shape = {"m11": (geom.m, 1, 1), "1m11": (1, geom.m, 1, 1), "1": (1,), "scalar": ()}[scale_shape]
    w, k = rand(rng, geom.w_shape), rand(rng, shape, -3, 3)
    bias = rand(rng, geom.m) if with_bias else None
    b = GraphBuilder()
    x = b.add_input("x", geom.x_shape)
    conv = b.insert(
        ConvOp(x, b.constant(w), None if bias is None else b.constant(bias), None, **geom.props())
    )
    kv = b.constant(k)
    before = b.finish([("y", b.insert(MulOp(kv, conv) if swap else MulOp(conv, kv)))])

    after = apply_pass(before, FoldMulIntoConvPass())

    assert (count(before, MulOp), count(after, MulOp), count(after, ConvOp)) == (1, 0, 1)
    xin = rand(rng, geom.x_shape, -2, 2)
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    k_ch = np.abs(np.broadcast_to(k.reshape(-1), (geom.m,))).reshape(1, -1, 1, 1)
    mag = geom.abs_conv(xin, w)
    if bias is not None:
        mag = mag + np.abs(bias).reshape(1, -1, 1, 1)
    assert_within(y0, y1, 4 * U * (k_ch * mag + np.abs(y0)))


def test_inapplicable_inputs_are_left_unchanged():
    rng = np.random.default_rng(4)
    b = GraphBuilder()
    x = b.add_input("x", (1, 2, 3, 3))
    outs = []
    for k_shape, extra_user, activation in [
        ((3,), False, "none"),
        ((2, 1, 1), True, "none"),
        ((2, 1, 1), False, "relu"),
    ]:
        c = b.insert(
            ConvOp(x, b.constant(rand(rng, (2, 2, 1, 1))), None, None, activation=activation)
        )
        outs.append(b.insert(MulOp(c, b.constant(rand(rng, k_shape)))))
        if extra_user:
            outs.append(b.insert(ReluOp(c)))
    outs.append(b.insert(MulOp(x, b.constant(rand(rng, (2, 1, 1))))))  # no conv at all
    module = b.finish([(f"y{i}", v) for i, v in enumerate(outs)])
    assert text(apply_pass(module, FoldMulIntoConvPass())) == text(module)
