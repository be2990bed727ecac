"""The direct channel-vectorized conv on compile-time packed weights (conv_direct.py,
pack.py, simd.py) against the numpy interpreter's conv: edge sizes, groups, dilation,
strides, every tile shape, and the lowering's layout choice."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import ir

from nnc.backends.llvm.jit import JitModule
from nnc.backends.llvm.kernels import conv2d, conv_direct, conv_pointwise
from nnc.backends.llvm.kernels.conv2d import emit_conv2d
from nnc.backends.llvm.kernels.conv_pointwise import use_pointwise
from nnc.backends.llvm.kernels.gemm import TileShape
from nnc.backends.llvm.kernels.pack import choose_conv_layout, pack_conv_weights
from nnc.backends.llvm.kernels.simd import transpose, vec_type
from nnc.backends.llvm.loops import new_function
from nnc.ir.interpret import conv2d as conv_oracle

ACTS = {
    "none": (lambda y: y, 0.0, 0.0),
    "relu": (lambda y: np.maximum(y, 0.0), 0.0, 0.0),
    "clip": (lambda y: np.clip(y, -0.5, 6.0), -0.5, 6.0),
    "leaky_relu": (lambda y: np.where(y < 0, 0.1 * y, y), 0.1, 0.0),
    "sigmoid": (lambda y: 1.0 / (1.0 + np.exp(-y)), 0.0, 0.0),
}


def _call(module: ir.Module, arrays: list[np.ndarray]) -> None:
    jit = JitModule(module)
    ptrs = [a.ctypes.data for a in arrays]
    ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(ptrs)))(jit.address("k"))(*ptrs)


def _check_conv(p: dict, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(p["x_shape"]).astype(np.float32)
    w = rng.standard_normal(p["w_shape"]).astype(np.float32)
    ref = conv_oracle(x, w, p["strides"], p["pads"], p["dilations"], p["group"]).astype(np.float64)
    args = [x, pack_conv_weights(w, p["group"])]
    if p["has_bias"]:
        bias = rng.standard_normal(p["w_shape"][0]).astype(np.float32)
        args.append(bias)
        ref = ref + bias.reshape(1, -1, 1, 1)
    if p["has_residual"]:
        res = rng.standard_normal(ref.shape).astype(np.float32)
        args.append(res)
        ref = ref + res
    fn, alpha, beta = ACTS[p["activation"]]
    ref = fn(ref)
    out = np.full(ref.shape, np.nan, dtype=np.float32)
    module = ir.Module()
    kfn = emit_conv2d(module, "k", **p, act_alpha=alpha, act_beta=beta, w_layout="c16")
    assert kfn.scratch_bytes == 0
    _call(module, [*args, out])
    tol = 1e-4 * max(float(np.abs(ref).max(initial=0.0)), 1.0)
    assert float(np.abs(out - ref).max(initial=0.0)) <= tol


@st.composite
def conv_cases(draw) -> dict:
    group = draw(st.sampled_from([1, 1, 2, 3]))
    cg, mg = draw(st.integers(1, 5)), draw(st.integers(8, 40))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]), 11))
    w = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]), 33))
    return dict(
        x_shape=(draw(st.integers(1, 2)), cg * group, h, w), w_shape=(mg * group, cg, kh, kw),
        strides=strides, pads=pads, dilations=dil, group=group,
        has_bias=draw(st.booleans()), has_residual=draw(st.booleans()),
        activation=draw(st.sampled_from(sorted(ACTS))),
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(conv_cases())
def test_direct_conv_random(p):
    _check_conv(p)


def _case(x_shape, w_shape, strides=(1, 1), pads=(1, 1, 1, 1), group=1, **kw) -> dict:
    p = dict(x_shape=x_shape, w_shape=w_shape, strides=strides, pads=pads, dilations=(1, 1),
             group=group, has_bias=True, has_residual=True, activation="relu")  # fmt: skip
    p.update(kw)
    return p


@pytest.mark.parametrize(
    "p",
    [
        _case((1, 8, 30, 31), (32, 8, 3, 3)),  # rows split into uneven segments
        _case((1, 4, 7, 7), (48, 4, 3, 3)),  # two whole rows per tile, 3 blocks
        _case((1, 3, 29, 27), (20, 3, 7, 7), strides=(2, 2), pads=(3, 3, 3, 3)),  # stem-like
        _case((1, 16, 6, 6), (40, 16, 1, 1), pads=(0, 0, 0, 0), has_bias=False),  # 1x1
        _case((2, 12, 9, 10), (24, 4, 3, 3), group=3, activation="clip"),
        # K = 27 <= NARROW_K: one-block tiles, 3 of them (the last 8 channels)
        _case((1, 3, 23, 25), (40, 3, 3, 3), strides=(2, 2), pads=(0, 0, 1, 1)),
    ],
)
def test_direct_conv_edges(p):
    _check_conv(p)


@pytest.mark.parametrize("tile", [TileShape(8, 6, 2), TileShape(4, 8, 3), TileShape(1, 4, 4)])
def test_direct_conv_other_isas(monkeypatch, tile):
    """AVX2 / NEON / scalar register tiles (run on the host) compute the same conv."""
    monkeypatch.setattr(conv_direct, "tile_shape", lambda module: tile)
    _check_conv(_case((1, 5, 9, 11), (20, 5, 3, 3), strides=(1, 2), pads=(1, 0, 2, 1)))


@pytest.mark.parametrize(
    "p",
    [
        _case((2, 16, 13, 11), (20, 16, 1, 1), pads=(0, 0, 0, 0)),  # tail tile, 20 channels
        _case((1, 24, 7, 7), (144, 24, 1, 1), pads=(0, 0, 0, 0), activation="clip"),
        _case((1, 5, 20, 20), (9, 5, 1, 1), pads=(0, 0, 0, 0), has_residual=False),
    ],
)
@pytest.mark.parametrize("tile", [None, TileShape(8, 6, 2), TileShape(4, 8, 3), TileShape(1, 4, 4)])
def test_pointwise_conv(monkeypatch, p, tile):
    """Small-K 1x1 convs take the pixel-vectorized GEMM (conv_pointwise.py) on every ISA."""
    assert use_pointwise(p["x_shape"], p["w_shape"], p["strides"], p["pads"], p["group"])
    if tile is not None:
        monkeypatch.setattr(conv_pointwise, "tile_shape", lambda module: tile)
    _check_conv(p)


@pytest.mark.parametrize("sup", [2, 3])
def test_pointwise_super_tiles(monkeypatch, sup):
    """Several pixel tiles per task, the partial last tile in the last super tile."""
    monkeypatch.setattr(conv_pointwise, "MIN_TASKS", 1)
    monkeypatch.setattr(conv_pointwise, "SUPER_TILES", sup)
    _check_conv(_case((1, 8, 20, 23), (20, 8, 1, 1), pads=(0, 0, 0, 0)))


@pytest.mark.parametrize("width", [1, 4, 8, 16])
def test_transpose(width):
    module = ir.Module()
    vec = vec_type(width)
    fn, b, (src, dst) = new_function(module, "k", 2)
    rows = [b.load(b.bitcast(b.gep(src, [ir.Constant(ir.IntType(64), r * width)]),
                             vec.as_pointer()), align=4) for r in range(width)]  # fmt: skip
    for r, v in enumerate(transpose(b, rows)):
        b.store(v, b.bitcast(b.gep(dst, [ir.Constant(ir.IntType(64), r * width)]),
                             vec.as_pointer()), align=4)  # fmt: skip
    b.ret_void()
    a = np.arange(width * width, dtype=np.float32).reshape(width, width)
    out = np.zeros_like(a)
    _call(module, [a, out])
    np.testing.assert_array_equal(out, a.T)


def test_pack_layout():
    w = np.arange(2 * 20 * 3 * 2 * 2, dtype=np.float32).reshape(40, 3, 2, 2)
    p = pack_conv_weights(w, group=2)
    assert p.shape == (2, 2, 3, 2, 2, 16)
    for g, m, c, i, j in [(0, 0, 0, 0, 0), (1, 19, 2, 1, 1), (0, 17, 1, 0, 1)]:
        assert p[g, m // 16, c, i, j, m % 16] == w[g * 20 + m, c, i, j]
    assert not p[0, 1, :, :, :, 4:].any()  # channels 20..31 of a group are zero padding


def test_layout_rule():
    assert choose_conv_layout((1, 64, 56, 56), (64, 64, 3, 3), 1, True) == "c16"
    assert choose_conv_layout((1, 64, 56, 56), (64, 64, 3, 3), 1, False) == "oihw"
    assert choose_conv_layout((1, 32, 56, 56), (32, 1, 3, 3), 32, True) == "oihw"  # depthwise


@pytest.mark.parametrize(
    "p",
    [
        _case((1, 8, 7, 7), (8, 1, 3, 3), group=8, activation="clip"),  # one masked chunk
        _case((2, 6, 30, 33), (12, 1, 3, 3), group=6, strides=(2, 2), pads=(1, 0, 2, 1)),
        _case((1, 5, 19, 17), (5, 1, 5, 3), group=5, dilations=(2, 1), pads=(2, 1, 3, 1)),
        _case((1, 4, 3, 40), (4, 1, 3, 3), group=4, strides=(1, 3), has_bias=False),
        # wide rows: runs of interior chunks (runtime loop) between masked border chunks
        _case((1, 3, 9, 150), (3, 1, 3, 3), group=3, strides=(2, 2), pads=(1, 1, 1, 1)),
        _case((1, 2, 6, 101), (2, 1, 3, 3), group=2, pads=(1, 1, 1, 1), activation="clip"),
        _case((1, 2, 11, 90), (2, 1, 5, 5), group=2, strides=(3, 3), pads=(2, 2, 2, 2)),
    ],
)
@pytest.mark.parametrize("tile", [None, TileShape(4, 8, 3)])
def test_depthwise(monkeypatch, p, tile):
    """Depthwise convs (oihw weights, depthwise.py): strides, dilation, multiplier 2,
    masked row tails; on the host tile and on the NEON tile (4-wide vectors)."""
    if tile is not None:
        monkeypatch.setattr(conv2d, "tile_shape", lambda module: tile)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(p["x_shape"]).astype(np.float32)
    w = rng.standard_normal(p["w_shape"]).astype(np.float32)
    ref = conv_oracle(x, w, p["strides"], p["pads"], p["dilations"], p["group"])
    args = [x, w]
    if p["has_bias"]:
        args.append(rng.standard_normal(p["w_shape"][0]).astype(np.float32))
        ref = ref + args[-1].reshape(1, -1, 1, 1)
    res = rng.standard_normal(ref.shape).astype(np.float32)
    fn, alpha, beta = ACTS[p["activation"]]
    ref = fn(ref + res)
    out = np.full(ref.shape, np.nan, dtype=np.float32)
    module = ir.Module()
    kfn = emit_conv2d(module, "k", **p, act_alpha=alpha, act_beta=beta)
    scratch = np.full(kfn.scratch_bytes + 64, 0xFF, dtype=np.uint8)  # NaN garbage
    aligned = scratch[(-scratch.ctypes.data) % 64 :]
    jit = JitModule(module)
    ptrs = [a.ctypes.data for a in [*args, res, out]] + [aligned.ctypes.data]
    ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(ptrs)))(jit.address("k"))(*ptrs)
    tol = 1e-4 * max(float(np.abs(ref).max()), 1.0)
    assert float(np.abs(out - ref).max()) <= tol
