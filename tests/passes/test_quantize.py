"""quantize: random conv/gemm layers, every mode; fired (op counts), error within the
docstring's bounds (elementwise for int8 static), inapplicable layers unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, conv_geometries, count, rand, seeds, text

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp, GemmOp
from nnc.ir.ops_quant import DequantizeOp, QConvOp, QGemmOp, QuantizeOp, WQConvOp, WQGemmOp
from nnc.passes.calibrate import annotate_ranges
from nnc.passes.quantize import QuantizePass


def _conv_model(geom, rng, act):
    b = GraphBuilder()
    x = b.add_input("x", geom.x_shape)
    w = rand(rng, geom.w_shape)
    bias = rand(rng, (geom.m,))
    y = b.insert(
        ConvOp(
            x,
            b.constant(w),
            b.constant(bias),
            None,
            activation=act,
            act_alpha=-0.5,
            act_beta=0.5,
            **geom.props(),
        )
    )
    return b.finish([("y", y)]), w, bias


@given(conv_geometries(), seeds, st.sampled_from(["none", "relu", "clip"]), st.booleans())
def test_int8_static_conv_error_bound(geom, seed, act, symmetric):
    rng = np.random.default_rng(seed)
    before, w, bias = _conv_model(geom, rng, act)
    xin = rand(rng, geom.x_shape)
    annotate_ranges(before, [[xin]], "minmax")
    after = apply_pass(before, QuantizePass(mode="int8", symmetric=symmetric))
    assert (count(after, ConvOp), count(after, QConvOp), count(after, QuantizeOp)) == (0, 1, 1)
    assert count(after, DequantizeOp) == 1
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    qc = next(op for op in after.walk() if isinstance(op, QConvOp))
    s_x, s_y = qc.prop("x_scale"), qc.prop("y_scale")
    s_w = qc.prop("w_scale").array.astype(np.float64).reshape(1, -1, 1, 1)
    wq = (
        next(
            op
            for op in after.walk()
            if op.name == "nn.constant" and op.prop("value").array.dtype == np.int8
        )
        .prop("value")
        .array
    )
    w_hat = wq * s_w.reshape(-1, 1, 1, 1)
    # |x^-x| <= s_x/2, |w^-w| <= s_w/2, bias rounding s_x*s_w/2, output rounding + range
    # edge <= s_y, float32 requantization ~1e-6 relative (docstring of quantize.py)
    bound = (
        s_y
        + s_x / 2 * geom.abs_conv(np.ones_like(xin), w_hat)
        + s_w / 2 * geom.abs_conv(xin, np.ones_like(w))
        + s_x * s_w / 2
        + 1e-5 * np.abs(y0)
    )
    err = np.abs(y1.astype(np.float64) - y0)
    assert (err <= bound).all(), (err - bound).max()


@given(
    seeds,
    st.sampled_from(["int8-dynamic", "int8-weight", "int4-weight", "fp16", "bf16"]),
    st.sampled_from(["", "per-tensor", "per-channel", "per-group"]),
    st.booleans(),
)
def test_weight_only_gemm_modes(seed, mode, granularity, weight_symmetric):
    if granularity == "per-group" and mode == "int8-dynamic":
        with pytest.raises(InvalidOptionError, match="per-group"):
            QuantizePass(mode=mode, granularity=granularity)
        return
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(1, 70)), int(rng.integers(1, 5))
    b = GraphBuilder()
    x = b.add_input("x", (2, k))
    w, c = rand(rng, (k, n)), rand(rng, (n,))
    y = b.insert(GemmOp(x, b.constant(w), b.constant(c), alpha=0.5, activation="relu"))
    before = b.finish([("y", y)])
    after = apply_pass(
        before,
        QuantizePass(
            mode=mode, granularity=granularity, group_size=16, weight_symmetric=weight_symmetric
        ),
    )
    assert (count(after, GemmOp), count(after, WQGemmOp)) == (0, 1)
    op = next(o for o in after.walk() if isinstance(o, WQGemmOp))
    assert op.prop("act_quant") == ("dynamic" if mode == "int8-dynamic" else "none")
    xin = rand(rng, (2, k))
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    # weight error per element: half a step of its group (int), relative 2^-11 / 2^-8 (fp)
    wmax = np.abs(w).max() * 0.5
    step = {
        "int8-dynamic": 2 * wmax / 254,
        "int8-weight": 2 * wmax / 254,
        "int4-weight": 2 * wmax / 14,
        "fp16": wmax * 2.0**-10,
        "bf16": wmax * 2.0**-7,
    }[mode]
    bound = step / 2 * np.abs(xin).sum(axis=1, keepdims=True) + 1e-5 * (1 + np.abs(y0))
    if mode == "int8-dynamic":  # + activation rounding: half a step of x per element
        s_a = (max(xin.max(), 0) - min(xin.min(), 0)) / 255
        bound = bound + s_a / 2 * np.abs(w * 0.5).sum(axis=0) * 1.01 + s_a * step * k
    err = np.abs(y1.astype(np.float64) - y0)
    assert (err <= bound * 1.01).all(), (err - bound).max()


@given(seeds)
def test_int8_static_gemm_with_gelu_uses_dynamic_activations(seed):
    """A gemm with a fused GELU (fuse-gelu) has no pre-activation range to requantize to:
    static int8 makes it int8-dynamic (int8 weights, GELU in float) instead of float."""
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(1, 70)), int(rng.integers(1, 9))
    b = GraphBuilder()
    x = b.add_input("x", (3, k))
    w, c = rand(rng, (k, n)), rand(rng, (n,))
    y = b.insert(GemmOp(x, b.constant(w), b.constant(c), activation="gelu"))
    before = b.finish([("y", y)])
    xin = rand(rng, (3, k))
    annotate_ranges(before, [[xin]], "minmax")
    after = apply_pass(before, QuantizePass(mode="int8"))
    assert (count(after, GemmOp), count(after, QGemmOp), count(after, WQGemmOp)) == (0, 0, 1)
    op = next(o for o in after.walk() if isinstance(o, WQGemmOp))
    assert (op.prop("act_quant"), op.prop("activation")) == ("dynamic", "gelu")
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    # pre-activation bound of the dynamic scheme (test above); GELU is 1.13-Lipschitz
    step = 2 * np.abs(w).max(axis=0) / 254
    s_a = (max(xin.max(), 0) - min(xin.min(), 0)) / 255
    pre = step / 2 * np.abs(xin).sum(axis=1, keepdims=True) + s_a / 2 * np.abs(w).sum(axis=0)
    bound = 1.13 * (pre * 1.01 + s_a * step * k) + 1e-5 * (1 + np.abs(y0))
    err = np.abs(y1.astype(np.float64) - y0)
    assert (err <= bound).all(), (err - bound).max()


def test_int4_weights_are_packed_and_small():
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.add_input("x", (1, 256))
    y = b.insert(GemmOp(x, b.constant(rand(rng, (256, 64)))))
    before = b.finish([("y", y)])
    after = apply_pass(before, QuantizePass(mode="int4-weight", group_size=128))
    op = next(o for o in after.walk() if isinstance(o, WQGemmOp))
    stored = op.operands[1].owner.prop("value").array
    assert stored.dtype == np.uint8 and stored.shape == (64, 128)
    total = stored.nbytes + op.prop("scale").array.nbytes + op.prop("zero_point").array.nbytes
    assert total <= 0.14 * 256 * 64 * 4


def test_without_ranges_int8_falls_back_to_dynamic_and_says_so():
    from nnc.passes.pipelines import run_pipeline

    b = GraphBuilder()
    x = b.add_input("x", (1, 4))
    y = b.insert(GemmOp(x, b.constant(np.ones((4, 2), np.float32))))
    module = b.finish([("y", y)])
    report = run_pipeline(module, "quantize{mode=int8}")
    assert any("no calibration data" in m for m in report.messages("quantize"))
    assert count(module, WQGemmOp) == 1


def test_inapplicable_layers_are_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (1, 4))
    wv = b.add_input("w", (4, 2))  # weight is not a constant
    y = b.insert(GemmOp(x, wv))
    before = b.finish([("y", y)])
    after = apply_pass(before, QuantizePass(mode="int8-weight"))
    assert text(after) == text(before)
    assert count(after, QGemmOp, WQGemmOp, WQConvOp) == 0


@pytest.mark.parametrize(
    "opts, message",
    [
        ({"mode": "int3"}, "unknown mode"),
        ({"granularity": "per-row"}, "granularity"),
        ({"group_size": 0}, "group-size"),
        ({"mode": "int8", "granularity": "per-group"}, "per-group"),
    ],
)
def test_bad_options(opts, message):
    with pytest.raises(InvalidOptionError, match=message):
        QuantizePass(**opts)
