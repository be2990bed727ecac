"""Window kernels read in place (``window.py``): pooling and depthwise conv on rows wide
enough for runs of interior chunks, on the host vector width and on NEON's 4 lanes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_compute import _check, _conv_check, _run, pool_ref

from nnc.backends.llvm.kernels import conv2d, pool
from nnc.backends.llvm.kernels.gemm import TileShape
from nnc.backends.llvm.kernels.pool import Axis, emit_avg_pool2d, emit_max_pool2d
from nnc.backends.llvm.kernels.window import row_chunks, run_width

NEON = TileShape(4, 8, 3)


def test_row_chunks_masks():
    """3x3/2 pad 1 over 40 columns, 8 lanes: first chunk masks column -1, the middle ones
    are interior, the last one masks lanes past the row end."""
    chunks = row_chunks(Axis(40, 3, 2, 1, 1, 1, 20), 8)
    assert [c.q0 for c in chunks] == [0, 8, 16]
    assert chunks[0].masks[0] is not None and not chunks[0].masks[0][0]
    assert chunks[1].interior and chunks[1].count == 8
    assert chunks[2].count == 4 and not chunks[2].interior
    assert run_width(16, 2) == 16 and run_width(16, 8) == 8 and run_width(16, 40) == 1


@st.composite
def wide_pools(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    pads = tuple(draw(st.integers(0, k[i % 2] - 1)) for i in range(4))
    strides = (draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 3, 5])))
    h = draw(st.integers(max(1, k[0] - pads[0] - pads[2]), 7))
    w = draw(st.integers(20, 90))
    return (1, 2, h, w), k, strides, pads, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=25, deadline=None)
@given(wide_pools(), st.booleans())
def test_pools_wide_rows(case, neon):
    x_shape, kernel, strides, pads, ceil_mode, include_pad = case
    mp = pytest.MonkeyPatch()
    if neon:
        mp.setattr(pool, "tile_shape", lambda module: NEON)
    try:
        x = np.random.default_rng(3).standard_normal(x_shape).astype(np.float32)
        ref = pool_ref(x, "max", kernel, strides, pads, (1, 1), ceil_mode)
        out = _run(emit_max_pool2d, [x], ref.shape, x_shape=x_shape, kernel=kernel,
                   strides=strides, pads=pads, dilations=(1, 1), ceil_mode=ceil_mode)  # fmt: skip
        assert np.array_equal(out, ref.astype(np.float32))
        ref = pool_ref(x, "avg", kernel, strides, pads, (1, 1), ceil_mode, include_pad)
        out = _run(emit_avg_pool2d, [x], ref.shape, x_shape=x_shape, kernel=kernel,
                   strides=strides, pads=pads, ceil_mode=ceil_mode,
                   count_include_pad=include_pad)  # fmt: skip
        _check(out, ref, rel=1e-6)
    finally:
        mp.undo()


def test_pool_large_stride_scalar_fallback():
    """A stride too wide for vector runs (``run_width`` < 4) keeps the scalar loops."""
    x = np.random.default_rng(4).standard_normal((1, 2, 5, 90)).astype(np.float32)
    args = dict(kernel=(2, 3), strides=(2, 20), pads=(0, 1, 0, 1), ceil_mode=False)
    ref = pool_ref(x, "max", args["kernel"], args["strides"], args["pads"], (1, 1), False)
    out = _run(emit_max_pool2d, [x], ref.shape, x_shape=x.shape, dilations=(1, 1), **args)
    assert np.array_equal(out, ref.astype(np.float32))


@settings(max_examples=15, deadline=None)
@given(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(24, 80),
    st.booleans(),
)  # fmt: skip
def test_depthwise_wide_rows(k, stride, mult, w, neon):
    mp = pytest.MonkeyPatch()
    if neon:
        mp.setattr(conv2d, "tile_shape", lambda module: NEON)
    try:
        p = dict(x_shape=(1, 3, 6, w), w_shape=(3 * mult, 1, k, k), strides=(stride, stride),
                 pads=(k // 2,) * 4, dilations=(1, 1), group=3, has_bias=True,
                 has_residual=True, activation="relu")  # fmt: skip
        _conv_check(p)
    finally:
        mp.undo()


@pytest.mark.parametrize("w, pads", [(111, (0, 0, 0, 0)), (27, (1, 1, 1, 1)), (40, (0, 1, 0, 2))])
def test_max_pool_strided_separable(w, pads):
    """3x3 stride-2 ceil-mode max pools (SqueezeNet) take the rows-first path: exact."""
    x = np.random.default_rng(5).standard_normal((1, 3, 9, w)).astype(np.float32)
    args = dict(kernel=(3, 3), strides=(2, 2), pads=pads)
    ref = pool_ref(x, "max", args["kernel"], args["strides"], pads, (1, 1), True)
    out = _run(emit_max_pool2d, [x], ref.shape, x_shape=x.shape, dilations=(1, 1),
               ceil_mode=True, **args)  # fmt: skip
    assert np.array_equal(out, ref.astype(np.float32))
