"""qconv's im2col row chunks (``qconv._im2col_row_vectors``: 4/8/16-pixel vectors, an
overlapping last chunk, strided loads, the 0x80 domain flip) on rows wider than the
Hypothesis cases of test_kernels_quant.py, bit-exact for every kernel flavour."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels_quant import FLAVOURS, assert_equal, conv_acc, epilogue_ref, run_kernel

from nnc.backends.llvm.kernels.qconv import emit_qconv


@pytest.mark.parametrize("flavour", ["vnni512", "madd256", "widen"])
@pytest.mark.parametrize(
    ("wd", "stride", "dil", "pads", "x_dtype"),
    [
        (21, 1, 1, (1, 1, 1, 1), "i8"),
        (40, 2, 1, (0, 1, 2, 0), "u8"),
        (37, 1, 2, (0, 0, 0, 0), "i8"),
    ],
)
def test_wide_rows_match_exact_reference(flavour, wd, stride, dil, pads, x_dtype):
    assert flavour in FLAVOURS
    rng = np.random.default_rng(wd)
    lo, hi = (-128, 127) if x_dtype == "i8" else (0, 255)
    x = rng.integers(lo, hi + 1, (1, 5, 6, wd)).astype(np.int8 if x_dtype == "i8" else np.uint8)
    w = rng.integers(-128, 128, (7, 5, 3, 3)).astype(np.int8)
    geo = dict(strides=(1, stride), pads=pads, dilations=(1, dil), group=1)
    q = dict(
        x_dtype=x_dtype, y_dtype="i8", x_zp=int(rng.integers(lo, hi + 1)), x_scale=0.02,
        w_scale=rng.uniform(0.001, 0.003, 7).astype(np.float32), act="none", lo=0.0, hi=0.0,
        fbias=None, y_scale=0.5, y_zp=3, bias=rng.integers(-100, 100, 7).astype(np.int32),
        res=None, r_dtype=None, r_zp=0, r_scale=0.0, flavour=flavour,
    )  # fmt: skip
    acc = conv_acc(x, w, geo["strides"], pads, geo["dilations"], 1, q["x_zp"])
    ref = epilogue_ref(acc + q["bias"][None, :, None, None], q, 1)
    assert_equal(run_kernel(emit_qconv, q, x, ref.shape, x_shape=x.shape, w=w, **geo), ref)
