"""fft-conv: large-kernel stride-1 convs become FFT convs within the declared bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, assert_within, count, rand, seeds, text
from test_winograd_conv import conv_model, plane_magnitude

from nnc.errors import InvalidOptionError
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp
from nnc.ir.ops_conv_algos import FFTConvOp
from nnc.passes.fft_conv import FFTConvPass
from nnc.passes.pipelines import run_pipeline


@given(
    seed=seeds,
    n=st.integers(1, 2),
    c=st.integers(1, 4),
    m=st.integers(1, 4),
    kh=st.integers(1, 7),
    kw=st.integers(1, 7),
    h=st.integers(1, 10),
    w=st.integers(1, 10),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    with_bias=st.booleans(),
    act=st.sampled_from(["none", "relu"]),
)
def test_fft_matches_conv_within_bound(seed, n, c, m, kh, kw, h, w, pads, with_bias, act):
    hp, wp = h + pads[0] + pads[2], w + pads[1] + pads[3]
    if hp < kh or wp < kw:
        return
    rng = np.random.default_rng(seed)
    wts = rand(rng, (m, c, kh, kw))
    bias = rand(rng, m) if with_bias else None
    before = conv_model((n, c, h, w), wts, pads, bias, False, act)

    after = apply_pass(before, FFTConvPass(min_kernel=1))

    assert (count(after, ConvOp), count(after, FFTConvOp)) == (0, 1)
    x = rand(rng, (n, c, h, w), -2, 2)
    y0, y1 = interpret(before, [x])[0], interpret(after, [x])[0]
    bound = 2 * (hp + wp) * U * plane_magnitude(x, wts, pads) + 4 * U * np.abs(y0)
    assert_within(y0, y1, bound)


@pytest.mark.parametrize(
    "w_shape,props",
    [
        ((2, 2, 3, 3), {}),  # below the default min-kernel 5
        ((2, 2, 5, 5), {"strides": (2, 2)}),
        ((2, 1, 5, 5), {"group": 2}),
        ((2, 2, 5, 5), {"dilations": (2, 2)}),
    ],
)
def test_inapplicable_convs_are_unchanged(w_shape, props):
    module = conv_model((1, 2, 9, 9), np.ones(w_shape, np.float32), (2, 2, 2, 2), **props)
    assert text(apply_pass(module, FFTConvPass())) == text(module)


def test_report_counts_multiplications():
    # 7x7 kernel, 16 -> 16 channels on 14x14 (pads 3): direct 16*16*14*14*49 mults,
    # pointwise 4 * 16*16 * 20 * 11 (Hp = 20, Wp/2 + 1 = 11).
    module = conv_model((1, 16, 14, 14), np.ones((16, 16, 7, 7), np.float32), (3, 3, 3, 3))
    report = run_pipeline(module, "fft-conv")
    lines = report.messages("fft-conv")
    assert lines[0] == "conv -> fft conv: 1"
    direct, pointwise = 16 * 16 * 14 * 14 * 49, 4 * 16 * 16 * 20 * 11
    assert lines[1].startswith(f"multiplications {direct:,} -> {pointwise:,} (10.91x fewer)")
    assert direct / pointwise == pytest.approx(10.91, abs=0.01)


def test_bad_option():
    with pytest.raises(InvalidOptionError, match="min-kernel"):
        FFTConvPass(min_kernel=0)
