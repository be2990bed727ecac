"""int8 depthwise conv (``kernels/qdepthwise.py``, the float32-FMA path of ``emit_qconv``):
bit-for-bit against the exact integer reference on rows wide enough for full vector chunks
plus overlapping/masked tails, strides 1-3 (column phases), dilations, padding, channel
multipliers, residuals, and at the exactness limit (saturating values, many taps)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_quant import (
    NP,
    RANGE,
    assert_equal,
    conv_acc,
    epilogue_ref,
    quant_params,
    run_kernel,
)

from nnc.backends.llvm.kernels import qdepthwise
from nnc.backends.llvm.kernels.qconv import emit_qconv


def check(q, x, w, geo):
    acc = conv_acc(x, w, geo["strides"], geo["pads"], geo["dilations"], geo["group"], q["x_zp"])
    if q["bias"] is not None and q["y_dtype"] != "f32":
        acc = acc + q["bias"][None, :, None, None]
    ref = epilogue_ref(acc, q, 1)
    assert_equal(run_kernel(emit_qconv, q, x, ref.shape, x_shape=x.shape, w=w, **geo), ref)


@st.composite
def depthwise_cases(draw, c_max=4, sw=(1, 2, 3), dw_max=2, h_max=12, w_max=70, flavours=None):
    """(quant params, x, w, conv kwargs) of a depthwise conv (depth multiplier 1 or 2,
    kernels up to 5x5, strides, dilations, pads up to 2); ``flavours`` pins the kernel
    flavour drawn (None: ``quant_params``' own draw)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    c, mg = draw(st.integers(1, c_max)), draw(st.sampled_from([1, 1, 2]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    strides = (draw(st.integers(1, 3)), draw(st.sampled_from(sw)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, dw_max)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]), h_max))
    wd = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]), w_max))
    oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    m = c * mg
    q = draw(quant_params(m, (1, m, oh, ow), rng))
    if flavours:
        q["flavour"] = draw(st.sampled_from(flavours))
    lo, hi = RANGE[q["x_dtype"]]
    x = rng.integers(lo, hi + 1, (1, c, h, wd)).astype(NP[q["x_dtype"]])
    w = rng.integers(-128, 128, (m, 1, kh, kw)).astype(np.int8)
    return q, x, w, dict(strides=strides, pads=pads, dilations=dil, group=c)


def dw_cases():
    return depthwise_cases()


@given(dw_cases())
@settings(max_examples=15, deadline=None)
def test_depthwise_matches_exact_reference(case):
    check(*case)


def _extreme(x_dtype: str, m: int, out_shape, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        x_dtype=x_dtype, y_dtype="i8", x_zp=0 if x_dtype == "u8" else -128, x_scale=0.02,
        w_scale=np.full(m, 1e-4, np.float32), act="none", lo=0.0, hi=0.0, fbias=None,
        y_scale=1.0, y_zp=3, bias=rng.integers(-100, 100, m).astype(np.int32),
        res=rng.integers(-128, 128, out_shape).astype(np.int8), r_dtype="i8", r_zp=-1,
        r_scale=0.7, flavour="widen",
    )  # fmt: skip


def test_depthwise_exact_at_the_float32_limit():
    """|x - zp| = 255 and |w| = 128 on every tap of a 22x22 window (484 taps, the largest
    square under MAX_TAPS): partial sums reach 2**23.9 and must stay exact; a 23x23
    window (529 taps) takes the integer path."""
    for k in (22, 23):
        m, hw = 2, k + 3
        x = np.full((1, m, hw, hw + 17), 255, np.uint8)
        x[0, 1] = 0
        w = np.full((m, 1, k, k), -128, np.int8)
        oh, ow = hw - k + 1, hw + 17 - k + 1
        q = _extreme("u8", m, (1, m, oh, ow), k)
        q["x_zp"] = 0 if k == 22 else 255
        check(q, x, w, dict(strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=m))
    assert 22 * 22 <= qdepthwise.MAX_TAPS < 23 * 23


def test_vector_width_narrows_for_small_planes():
    assert qdepthwise.vector_width(16, 112) == 16
    assert qdepthwise.vector_width(16, 7) == 8
    assert qdepthwise.vector_width(16, 2) == 4


def test_depthwise_large_bias_takes_the_integer_sum():
    """A bias too large to start the float sum at (|bias| + taps * 255 * 128 >= 2**24)."""
    m, rng = 3, np.random.default_rng(5)
    x = rng.integers(0, 256, (1, m, 9, 37)).astype(np.uint8)
    w = rng.integers(-128, 128, (m, 1, 3, 3)).astype(np.int8)
    q = _extreme("u8", m, (1, m, 9, 37), 5)
    q["res"] = None
    q.update(
        bias=np.array([2**24, -(2**27), 12345], np.int32),
        x_zp=77,
        w_scale=np.array([1.5e-4, 2e-5, 0.01], np.float32),
    )
    check(q, x, w, dict(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=m))
