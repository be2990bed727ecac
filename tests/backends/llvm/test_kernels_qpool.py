"""Integer pooling kernels (``kernels/qpool.py``): bit-for-bit against numpy references on
random shapes (odd sizes, padding, strides, dilations, ceil mode), and code size that does
not grow with the plane."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import ir
from test_kernels_quant import NP, RANGE, Jit

from nnc.backends.llvm.kernels.pool import pool_out_size
from nnc.backends.llvm.kernels.qpool import emit_qmax_pool2d
from nnc.backends.llvm.targets import host_target

HOST = host_target()


def qmax_ref(x, k, s, pads, d, ceil_mode, dtype):
    """Max over in-bounds taps; qmin for a window without one."""
    n, c, h, w = x.shape
    oh = pool_out_size(h, k[0], s[0], pads[0], pads[2], d[0], ceil_mode)
    ow = pool_out_size(w, k[1], s[1], pads[1], pads[3], d[1], ceil_mode)
    out = np.full((n, c, oh, ow), RANGE[dtype][0], np.int64)
    for i in range(oh):
        for j in range(ow):
            for u in range(k[0]):
                for v in range(k[1]):
                    yy, xx = i * s[0] - pads[0] + u * d[0], j * s[1] - pads[1] + v * d[1]
                    if 0 <= yy < h and 0 <= xx < w:
                        out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, yy, xx])
    return out.astype(NP[dtype])


def build(name: str, emit, **kw) -> tuple[Jit, int]:
    module = ir.Module(name="m")
    kfn = emit(module, "k", **kw)
    return Jit(module, HOST), kfn.scratch_bytes


@settings(max_examples=12, deadline=None)
@given(
    h=st.integers(1, 13), w=st.integers(1, 13), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)), d=st.sampled_from([(1, 1), (2, 1)]),
    pads=st.tuples(*[st.integers(0, 1)] * 4), ceil_mode=st.booleans(),
    dtype=st.sampled_from(["u8", "i8"]), seed=st.integers(0, 99),
)  # fmt: skip
def test_qmax_pool_matches_reference(h, w, k, s, d, pads, ceil_mode, dtype, seed):
    oh = pool_out_size(h, k[0], s[0], pads[0], pads[2], d[0], ceil_mode)
    ow = pool_out_size(w, k[1], s[1], pads[1], pads[3], d[1], ceil_mode)
    if oh <= 0 or ow <= 0:
        return
    lo, hi = RANGE[dtype]
    x = np.random.default_rng(seed).integers(lo, hi + 1, (1, 3, h, w)).astype(NP[dtype])
    jit, _ = build("qmax", emit_qmax_pool2d, x_shape=x.shape, kernel=k, strides=s, pads=pads,
                   dilations=d, ceil_mode=ceil_mode, dtype=dtype)  # fmt: skip
    y = np.zeros((1, 3, oh, ow), NP[dtype])
    jit.call([x, y], 0)
    np.testing.assert_array_equal(y, qmax_ref(x, k, s, pads, d, ceil_mode, dtype))


def test_qmax_pool_code_size_is_independent_of_the_plane():
    sizes = []
    for hw in (16, 112):
        module = ir.Module(name="m")
        emit_qmax_pool2d(module, "k", x_shape=(1, 64, hw, hw), kernel=(3, 3), strides=(2, 2),
                         pads=(1, 1, 1, 1), dilations=(1, 1), ceil_mode=False,
                         dtype="u8")  # fmt: skip
        sizes.append(len(str(module)))
    assert sizes[1] < sizes[0] * 1.1
