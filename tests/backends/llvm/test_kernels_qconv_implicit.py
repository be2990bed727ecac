"""qconv's implicit-GEMM path (``qconv_implicit``: channel-quad interleaved padded input,
virtual columns, per-tap offsets, stride phases, residual expansion, output compaction):
bit-exact against the exact integer reference for the VNNI flavours, plus its gating."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from test_kernels_quant import (
    assert_equal,
    conv_acc,
    epilogue_ref,
    group1_conv_cases,
    run_kernel,
)

from nnc.backends.llvm.kernels import qconv_implicit as qimp
from nnc.backends.llvm.kernels.qconv import emit_qconv
from nnc.backends.llvm.kernels.qisa import ISAS


def implicit_cases():
    return group1_conv_cases([(3, 3), (1, 3), (2, 2), (5, 5), (3, 1)], 10, 20, 2, 12, 40)


def check(q, x, w, geo, implicit=True):
    acc = conv_acc(x, w, geo["strides"], geo["pads"], geo["dilations"], 1, q["x_zp"])
    if q["bias"] is not None and q["y_dtype"] != "f32":
        acc = acc + q["bias"][None, :, None, None]
    ref = epilogue_ref(acc, q, 1)
    out = run_kernel(emit_qconv, q, x, ref.shape, x_shape=x.shape, w=w, implicit=implicit, **geo)
    assert_equal(out, ref)


@given(implicit_cases())
@settings(max_examples=25, deadline=None)
def test_implicit_matches_exact_reference(case):
    check(*case)


@pytest.mark.parametrize("stride", [1, 2])
def test_resnet_like_layer_both_paths(stride):
    """A wide 3x3 layer (vector chunks with overlap, several column tiles, residual)."""
    rng = np.random.default_rng(stride)
    c, m, h = 12, 9, 23
    x = rng.integers(0, 256, (1, c, h, h)).astype(np.uint8)
    w = rng.integers(-128, 128, (m, c, 3, 3)).astype(np.int8)
    oh = (h + 2 - 3) // stride + 1
    q = dict(
        x_dtype="u8", y_dtype="u8", x_zp=7, x_scale=0.02, act="relu", lo=0.0, hi=0.0,
        w_scale=rng.uniform(0.001, 0.003, m).astype(np.float32), fbias=None, y_scale=0.3,
        y_zp=2, bias=rng.integers(-500, 500, m).astype(np.int32), r_dtype="u8", r_zp=5,
        r_scale=0.2, res=rng.integers(0, 256, (1, m, oh, oh)).astype(np.uint8),
        flavour="vnni512",
    )  # fmt: skip
    geo = dict(strides=(stride, stride), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)
    for implicit in (True, False):
        check(q, x, w, geo, implicit)


def test_gating_and_weight_order():
    d = dict(kh=3, kw=3, strides=(1, 1), dil=(1, 1))
    assert qimp.eligible(ISAS["vnni512"], d, 1)
    assert not qimp.eligible(ISAS["sdot"], d, 1)  # aarch64 keeps im2col
    assert not qimp.eligible(ISAS["madd512"], d, 1)
    assert not qimp.eligible(ISAS["vnni512"], d, 2)
    assert not qimp.eligible(ISAS["vnni512"], {**d, "dil": (2, 2)}, 1)
    assert not qimp.eligible(ISAS["vnni512"], {**d, "kh": 1, "kw": 1}, 1)
    # default: implicit unless quad padding adds > 20% MACs (C=3 stems keep im2col)
    assert [qimp.preferred({"c": c}) for c in (3, 4, 6, 7, 64)] == [False, True, False, True, True]
    w = np.arange(2 * 5 * 2 * 3).reshape(2, 5, 2, 3).astype(np.int8)
    rows = qimp.implicit_weights(w)
    assert rows.shape == (2, 2 * 2 * 3 * 4)
    # k = ((quad * KH + i) * KW + j) * 4 + lane holds channel quad*4 + lane of tap (i, j)
    assert rows[1, ((1 * 2 + 1) * 3 + 2) * 4 + 0] == w[1, 4, 1, 2]
    assert (rows[:, ((1 * 2 + 0) * 3 + 0) * 4 + 1 :: 4][:, :6] == 0).all()  # padded channels
