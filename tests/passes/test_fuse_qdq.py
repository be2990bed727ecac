"""fuse-qdq: random QDQ conv layers (weights on a per-channel symmetric int8 grid) become
integer ops whose output is within one quantization step of the float QDQ reference;
weights off the grid are left unchanged."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, conv_geometries, count, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp, GemmOp
from nnc.ir.ops_quant import DequantizeOp, QConvOp, QGemmOp, QuantizeOp
from nnc.passes.fuse_qdq import FuseQDQPass


def _p(s, z):
    return {"scale": np.array(s, np.float32), "zero_point": np.array(z, np.int32)}


@given(conv_geometries(), seeds, st.sampled_from(["none", "relu"]), st.sampled_from(["u8", "i8"]))
def test_qdq_conv_fuses_within_one_step(geom, seed, act, out_dtype):
    rng = np.random.default_rng(seed)
    s_w = rng.uniform(0.001, 0.05, geom.m).astype(np.float32)
    wq = rng.integers(-127, 128, geom.w_shape)
    wq.reshape(geom.m, -1)[:, 0] = 127  # symmetric quantizers put max|w| at 127
    w = (wq.astype(np.float32) * s_w.reshape(-1, 1, 1, 1)).astype(np.float32)
    bias = (rng.integers(-50, 50, geom.m) * np.float32(0.02) * s_w).astype(np.float32)
    b = GraphBuilder()
    x = b.add_input("x", geom.x_shape, "u8")
    d = b.insert(DequantizeOp(x, **_p(0.02, 100)))
    c = b.insert(ConvOp(d, b.constant(w), b.constant(bias), None, activation=act, **geom.props()))
    y_zp = 3 if out_dtype == "u8" else -2
    q = b.insert(QuantizeOp(c, dtype=out_dtype, **_p(float(rng.uniform(0.01, 0.2)), y_zp)))
    before = b.finish([("y", q)])
    after = apply_pass(before, FuseQDQPass())
    assert (count(after, QConvOp), count(after, ConvOp, QuantizeOp, DequantizeOp)) == (1, 0)
    xin = rng.integers(0, 256, geom.x_shape).astype(np.uint8)
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    assert np.abs(y0.astype(np.int64) - y1.astype(np.int64)).max() <= 1


def test_off_grid_weights_are_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (1, 4), "i8")
    d = b.insert(DequantizeOp(x, **_p(0.1, 0)))
    g = b.insert(GemmOp(d, b.constant(np.linspace(0.1, 1, 8, dtype=np.float32).reshape(4, 2))))
    q = b.insert(QuantizeOp(g, dtype="i8", **_p(0.1, 0)))
    before = b.finish([("y", q)])
    after = apply_pass(before, FuseQDQPass())
    assert text(after) == text(before) and count(after, QGemmOp) == 0
