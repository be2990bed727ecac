"""Quantized ops: round-trip bound, and the interpreter's integer semantics against an
independent exact integer reference (docs/quantization.md is the contract)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.nn_base import ShapeError
from nnc.ir.ops_quant import (
    DequantizeOp,
    QConvOp,
    QGemmOp,
    QuantizeOp,
    RequantizeOp,
    WQGemmOp,
    bf16_decode,
    bf16_encode,
    clamp_range,
    pack_int4,
    qrange,
    requant_multiplier,
    residual_multiplier,
    unpack_int4,
)
from nnc.ir.text import module_to_text, parse_module

seeds = st.integers(0, 2**32 - 1)
F32 = np.float32


def _run(build, inputs):
    b = GraphBuilder()
    args = [
        b.add_input(
            f"a{i}",
            a.shape,
            {np.dtype(np.float32): "f32", np.dtype(np.uint8): "u8", np.dtype(np.int8): "i8"}[
                a.dtype
            ],
        )
        for i, a in enumerate(inputs)
    ]
    out = build(b, *args)
    module = b.finish([("y", out)])
    module.verify()
    # the text form round-trips (exact scales) and gives the same results
    again = parse_module(module_to_text(module))
    y1, y2 = interpret(module, inputs)[0], interpret(again, inputs)[0]
    np.testing.assert_array_equal(y1, y2)
    return y1


@given(
    seeds,
    st.sampled_from(["per-tensor", "per-channel", "per-group"]),
    st.sampled_from(["u8", "i8"]),
)
def test_round_trip_error_at_most_half_a_step(seed, granularity, dtype):
    rng = np.random.default_rng(seed)
    shape = (2, int(rng.integers(1, 9)), 3)
    axis, group = 1, 0
    if granularity == "per-tensor":
        pshape = ()
    elif granularity == "per-channel":
        pshape = (shape[1],)
    else:
        group = int(rng.integers(1, 4))
        pshape = (2, math.ceil(shape[1] / group), 3)
    scale = rng.uniform(1e-3, 2, pshape).astype(F32)
    qmin, qmax = qrange(dtype)
    zp = rng.integers(qmin, qmax + 1, pshape).astype(np.int32)
    if dtype == "i8":
        zp = np.zeros(pshape, np.int32)
    from nnc.ir.ops_quant import expand_params

    s = expand_params(scale, shape, axis, group).astype(np.float64)
    z = expand_params(zp, shape, axis, group)
    lo, hi = s * (qmin - z), s * (qmax - z)
    x = (lo + (hi - lo) * rng.uniform(0, 1, shape)).astype(F32)
    props = dict(scale=scale, zero_point=zp, axis=axis, group_size=group)

    def build(b, xv):
        q = b.insert(QuantizeOp(xv, dtype=dtype, **props))
        return b.insert(DequantizeOp(q, **props))

    y = _run(build, [x])
    err = np.abs(y.astype(np.float64) - x)
    assert (err <= s / 2 * (1 + 1e-6) + 4 * 2.0**-24 * np.abs(x)).all(), err.max()


def _ref_requant(acc, mult, lo, hi, y_zp, extra=None):
    """Contract step by step with numpy float32 scalars (independent of the interpreter)."""
    out = np.empty(acc.shape, np.int64)
    for idx in np.ndindex(acc.shape):
        t = F32(acc[idx]) * F32(mult[idx])
        if extra is not None:
            t = F32(t + F32(extra[idx]))
        v = float(np.rint(t)) + y_zp
        out[idx] = int(min(max(v, lo), hi))
    return out


def _ref_conv_acc(x, x_zp, w, b, stride, pad, group):
    """Exact int32 conv accumulator with Python-int loops (padding = 0 contribution)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    acc = np.zeros((n, m, oh, ow), np.int64)
    mg = m // group
    for ni, mi, i, j in np.ndindex(n, m, oh, ow):
        g = mi // mg
        s = int(b[mi]) if b is not None else 0
        for ci in range(cg):
            for u in range(kh):
                for v in range(kw):
                    yy, xx = i * stride - pad + u, j * stride - pad + v
                    if 0 <= yy < h and 0 <= xx < wd:
                        s += (int(x[ni, g * cg + ci, yy, xx]) - x_zp) * int(w[mi, ci, u, v])
        assert -(2**31) <= s < 2**31
        acc[ni, mi, i, j] = s
    return acc


@given(
    seeds,
    st.sampled_from(["u8", "i8"]),
    st.sampled_from(["u8", "i8"]),
    st.sampled_from(["none", "relu", "clip"]),
    st.booleans(),
)
def test_qconv_matches_exact_integer_reference(seed, in_dtype, out_dtype, act, residual):
    rng = np.random.default_rng(seed)
    group = int(rng.choice([1, 2]))
    cg, mg = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    c, m = cg * group, mg * group
    k, stride, pad = int(rng.choice([1, 3])), int(rng.choice([1, 2])), int(rng.integers(0, 2))
    x = rng.integers(*np.array(qrange(in_dtype)) + [0, 1], (1, c, 5, 4)).astype(
        in_dtype.replace("u8", "uint8").replace("i8", "int8")
    )
    w = rng.integers(-127, 128, (m, cg, k, k)).astype(np.int8)
    bias = rng.integers(-5000, 5000, m).astype(np.int32)
    qmin, qmax = qrange(in_dtype)
    x_zp = int(rng.integers(qmin, qmax + 1)) if in_dtype == "u8" else 0
    omin, omax = qrange(out_dtype)
    y_zp = int(rng.integers(omin, omax + 1))
    x_scale, y_scale = float(F32(rng.uniform(0.01, 0.1))), float(F32(rng.uniform(0.05, 0.5)))
    w_scale = rng.uniform(1e-3, 1e-2, m).astype(F32)
    alpha, beta = float(rng.uniform(-2, 0)), float(rng.uniform(0, 6))
    props = dict(
        strides=(stride, stride),
        pads=(pad,) * 4,
        group=group,
        x_scale=x_scale,
        x_zp=x_zp,
        w_scale=w_scale,
        y_scale=y_scale,
        y_zp=y_zp,
        out_dtype=out_dtype,
        activation=act,
        act_alpha=alpha,
        act_beta=beta,
    )
    acc = _ref_conv_acc(x, x_zp, w, bias, stride, pad, group)
    r = None
    extra = None
    if residual:
        r = rng.integers(0, 256, acc.shape).astype(np.uint8)
        props.update(r_scale=0.07, r_zp=11)
        extra = (r.astype(np.int64) - 11).astype(F32) * residual_multiplier(0.07, y_scale)

    def build(b, xv, *rv):
        wc, bc = b.constant(w), b.constant(bias)
        return b.insert(QConvOp(xv, wc, bc, rv[0] if rv else None, **props))

    got = _run(build, [x] + ([r] if residual else []))
    mult = np.broadcast_to(
        requant_multiplier(x_scale, w_scale, y_scale).reshape(1, -1, 1, 1), acc.shape
    )
    lo, hi = clamp_range(act, alpha, beta, y_scale, y_zp, out_dtype)
    want = _ref_requant(acc, mult, lo, hi, y_zp, extra)
    np.testing.assert_array_equal(got.astype(np.int64), want)


@given(seeds, st.sampled_from(["u8", "i8"]))
def test_qgemm_matches_exact_integer_reference(seed, in_dtype):
    rng = np.random.default_rng(seed)
    rows, k, n = int(rng.integers(1, 4)), int(rng.integers(1, 20)), int(rng.integers(1, 6))
    npdt = np.uint8 if in_dtype == "u8" else np.int8
    qmin, qmax = qrange(in_dtype)
    x = rng.integers(qmin, qmax + 1, (2, rows, k)).astype(npdt)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    x_zp = int(rng.integers(qmin, qmax + 1))
    props = dict(
        x_scale=0.02,
        x_zp=x_zp,
        w_scale=rng.uniform(1e-3, 1e-2, n).astype(F32),
        y_scale=0.03,
        y_zp=7,
        out_dtype="u8",
        activation="relu",
    )

    def build(b, xv):
        return b.insert(QGemmOp(xv, b.constant(w), None, None, **props))

    got = _run(build, [x])
    acc = np.zeros((2, rows, n), np.int64)
    for idx in np.ndindex(2, rows, n):
        acc[idx] = sum((int(x[idx[0], idx[1], kk]) - x_zp) * int(w[idx[2], kk]) for kk in range(k))
    mult = np.broadcast_to(requant_multiplier(0.02, props["w_scale"], 0.03), acc.shape)
    want = _ref_requant(acc, mult, 7, 255, 7)
    np.testing.assert_array_equal(got.astype(np.int64), want)


@given(seeds)
def test_requantize_matches_reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (3, 5)).astype(np.uint8)

    def build(b, xv):
        return b.insert(RequantizeOp(xv, x_scale=0.1, x_zp=9, y_scale=0.0625, y_zp=-3, dtype="i8"))

    got = _run(build, [x])
    m = np.broadcast_to(F32(0.1) / F32(0.0625), x.shape)
    np.testing.assert_array_equal(got, _ref_requant(x.astype(np.int64) - 9, m, -128, 127, -3))


@given(seeds)
def test_int4_packing_and_bf16_round_trip(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 12))
    v = rng.integers(-8, 8, (3, k))
    packed = pack_int4(v)
    assert packed.shape == (3, (k + 1) // 2) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack_int4(packed, k, signed=True), v)
    # element 0 in the low nibble of byte 0
    assert packed[0, 0] & 0xF == v[0, 0] & 0xF
    f = rng.standard_normal(50).astype(F32)
    back = bf16_decode(bf16_encode(f))
    assert (np.abs(back - f) <= np.abs(f) * 2.0**-8).all()


def test_weight_only_gemm_decodes_int4_groups():
    w = np.array([[1, -2, 3, -8, 7, 0]], np.int64)
    scale = np.array([[0.5, 0.25]], np.float16)

    def build(b, xv):
        wc = b.constant(pack_int4(w))
        return b.insert(
            WQGemmOp(
                xv,
                wc,
                None,
                None,
                w_shape=(1, 6),
                storage="i4",
                scale=scale,
                zero_point=np.zeros((0, 0), np.int32),
                group_size=4,
            )
        )

    x = np.ones((1, 6), F32)
    y = _run(build, [x])
    assert y[0, 0] == pytest.approx((1 - 2 + 3 - 8) * 0.5 + (7 + 0) * 0.25)


def test_verifier_rejects_bad_parameters():
    b = GraphBuilder()
    x = b.add_input("x", (1, 4))
    with pytest.raises(ShapeError, match="per-channel scale"):
        QuantizeOp(x, scale=np.ones(3, F32), zero_point=np.zeros(3, np.int32), axis=1)
    q = b.insert(QuantizeOp(x, scale=np.array(1, F32), zero_point=np.array(0, np.int32)))
    with pytest.raises(ShapeError, match="cannot fuse activation"):
        QGemmOp(
            q,
            b.constant(np.ones((2, 4), np.int8)),
            None,
            None,
            x_scale=1.0,
            w_scale=np.ones(2, F32),
            y_scale=1.0,
            activation="sigmoid",
        )
