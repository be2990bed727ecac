"""qconv's im2col copy on wide rows (``ow >= 16``) with wide kernels (``kw >= g``): the span
path (``_im2col_row_span``: a k group's taps as one or two runs of consecutive bytes, one
shuffle), its fallbacks (last partial group, dilated columns) and the (k group, row band)
task split, bit-exact against the exact integer reference for every ISA flavour."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_quant import NP, RANGE, check_conv, quant_params

from nnc.backends.llvm import parallel
from nnc.backends.llvm.kernels import qconv


@st.composite
def wide_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    c, m = draw(st.integers(1, 5)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(2, 7))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dil = (draw(st.integers(1, 2)), draw(st.sampled_from([1, 1, 1, 2])))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]), 5))
    ow = draw(st.integers(16, 37))
    wd = (ow - 1) * strides[1] + dil[1] * (kw - 1) + 1 - pads[1] - pads[3]
    wd = max(wd, 1)
    n = draw(st.integers(1, 2))
    oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    q = draw(quant_params(m, (n, m, oh, ow), rng))
    lo, hi = RANGE[q["x_dtype"]]
    x = rng.integers(lo, hi + 1, (n, c, h, wd)).astype(NP[q["x_dtype"]])
    w = rng.integers(-128, 128, (m, c, kh, kw)).astype(np.int8)
    return q, x, w, dict(strides=strides, pads=pads, dilations=dil, group=1, implicit=False)


@given(wide_cases())
@settings(max_examples=30, deadline=None)
def test_wide_rows_match_exact_reference(case):
    check_conv(*case)


@pytest.mark.parametrize("flavour", ["vnni512", "madd512", "widen"])
@pytest.mark.parametrize("x_dtype", ["u8", "i8"])
def test_stem_like_conv_in_bands(monkeypatch, flavour, x_dtype):
    """A 3-channel 7x7 stride-2 conv (every split of a k group over two rows and two
    channels) cut into (k group, row band) tasks (the band split forced on)."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    rng = np.random.default_rng(7)
    lo, hi = RANGE[x_dtype]
    x = rng.integers(lo, hi + 1, (1, 3, 13, 41)).astype(NP[x_dtype])
    w = rng.integers(-128, 128, (5, 3, 7, 7)).astype(np.int8)
    oh, ow = (13 + 6 - 7) // 2 + 1, (41 + 6 - 7) // 2 + 1
    q = dict(
        x_dtype=x_dtype, y_dtype="u8", x_zp=lo + 9, x_scale=0.02, act="relu", lo=0.0, hi=0.0,
        w_scale=rng.uniform(0.001, 0.003, 5).astype(np.float32), fbias=None, y_scale=0.3,
        y_zp=2, bias=rng.integers(-500, 500, 5).astype(np.int32), r_dtype=None, res=None,
        flavour=flavour,
    )  # fmt: skip
    assert ow >= 16 and qconv._im2col_bands(-(-147 // 4), oh) > 1
    check_conv(q, x, w, dict(strides=(2, 2), pads=(3, 3, 3, 3), dilations=(1, 1), group=1))
