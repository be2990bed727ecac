"""Blocked-layout kernels (kernels/blocked.py, conv_direct.py with blocked activations)
against the interpreter's numpy semantics, on every vector width (forced tile shapes)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import ir

from nnc.backends.llvm.jit import JitModule
from nnc.backends.llvm.kernels import blocked, conv_direct
from nnc.backends.llvm.kernels.gemm import TileShape
from nnc.backends.llvm.kernels.pack import pack_conv_weights
from nnc.ir.interpret import activation
from nnc.ir.interpret import conv2d as conv_oracle
from nnc.ir.interpret_blocked import from_blocked, to_blocked

#: None = the host; then AVX2-, NEON- and scalar-shaped tiles (vector widths 8, 4, 1).
TILES = [None, TileShape(8, 6, 2), TileShape(4, 8, 3), TileShape(1, 4, 4)]


def _call(module: ir.Module, arrays: list[np.ndarray]) -> None:
    jit = JitModule(module)
    ptrs = [a.ctypes.data for a in arrays]
    ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(ptrs)))(jit.address("k"))(*ptrs)


def _force(monkeypatch, tile) -> None:
    if tile is not None:
        monkeypatch.setattr(blocked, "tile_shape", lambda module: tile)
        monkeypatch.setattr(conv_direct, "tile_shape", lambda module: tile)


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize(
    "shape,block", [((2, 20, 3, 7), 16), ((1, 16, 5, 5), 16), ((1, 3, 1, 17), 8), ((1, 9, 2, 3), 4)]
)
def test_transforms_round_trip(monkeypatch, tile, shape, block):
    _force(monkeypatch, tile)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    want = to_blocked(x, block)
    got = np.full(want.shape, np.nan, dtype=np.float32)
    module = ir.Module()
    blocked.emit_to_blocked(module, "k", shape=shape, block=block)
    _call(module, [x, got])
    np.testing.assert_array_equal(got, want)
    back = np.full(shape, np.nan, dtype=np.float32)
    module = ir.Module()
    blocked.emit_from_blocked(module, "k", shape=shape, block=block)
    _call(module, [got, back])
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(back, from_blocked(want, shape[1]))


@st.composite
def conv_cases(draw) -> dict:
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 1)) for _ in range(4))
    h = draw(st.integers(max(1, kh - pads[0] - pads[2]), 9))
    w = draw(st.integers(max(1, kw - pads[1] - pads[3]), 33))
    return dict(
        x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 36)), h, w),
        w_shape=(draw(st.integers(1, 40)), 0, kh, kw), strides=strides, pads=pads,
        dilations=(1, 1), group=1, has_bias=draw(st.booleans()),
        has_residual=draw(st.booleans()),
        activation=draw(st.sampled_from(["none", "relu", "sigmoid"])),
    )  # fmt: skip


def _check_conv(p: dict, seed: int = 0) -> None:
    p = dict(p, w_shape=(p["w_shape"][0], p["x_shape"][1], *p["w_shape"][2:]))
    m = p["w_shape"][0]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(p["x_shape"]).astype(np.float32)
    w = rng.standard_normal(p["w_shape"]).astype(np.float32)
    ref = conv_oracle(x, w, p["strides"], p["pads"], p["dilations"], 1)
    args = [to_blocked(x, 16), pack_conv_weights(w, 1)]
    if p["has_bias"]:
        bias = rng.standard_normal(m).astype(np.float32)
        args.append(bias)
        ref = ref + bias.reshape(1, -1, 1, 1)
    if p["has_residual"]:
        res = rng.standard_normal(ref.shape).astype(np.float32)
        args.append(to_blocked(res, 16))
        ref = ref + res
    ref = activation(ref, p["activation"])
    out = np.full(to_blocked(ref, 16).shape, np.nan, dtype=np.float32)
    module = ir.Module()
    blocked.emit_conv2d_blocked(module, "k", **p)
    _call(module, [*args, out])
    tol = 1e-4 * max(float(np.abs(ref).max(initial=0.0)), 1.0)
    assert float(np.abs(from_blocked(out, m) - ref).max(initial=0.0)) <= tol
    flat = out.transpose(0, 1, 4, 2, 3).reshape(out.shape[0], -1, *out.shape[2:4])
    assert not flat[:, m:].any(), "the channel tail must be zero"


@settings(max_examples=10, deadline=None)
@given(p=conv_cases(), tile=st.sampled_from(TILES))
def test_conv_blocked_random(p, tile):
    with pytest.MonkeyPatch.context() as mp:
        _force(mp, tile)
        _check_conv(p)


def test_conv_blocked_needs_block_16():
    p = dict(x_shape=(1, 4, 3, 3), w_shape=(8, 4, 1, 1), strides=(1, 1), pads=(0,) * 4,
             dilations=(1, 1), group=1, has_bias=False, block=8)  # fmt: skip
    with pytest.raises(ValueError, match="block 16"):
        blocked.emit_conv2d_blocked(ir.Module(), "k", **p)


@st.composite
def window_cases(draw) -> dict:
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, k[i % 2] - 1)) for i in range(4))
    h = draw(st.integers(dil[0] * (k[0] - 1) + 1, 9))
    w = draw(st.integers(dil[1] * (k[1] - 1) + 1, 30))
    return dict(x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 40)), h, w), k=k,
                strides=strides, pads=pads, dilations=dil)  # fmt: skip


@settings(max_examples=8, deadline=None)
@given(p=window_cases(), tile=st.sampled_from(TILES), bias=st.booleans(), res=st.booleans())
def test_depthwise_blocked_random(p, tile, bias, res):
    c = p["x_shape"][1]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(p["x_shape"]).astype(np.float32)
    w = rng.standard_normal((c, 1, *p["k"])).astype(np.float32)
    ref = conv_oracle(x, w, p["strides"], p["pads"], p["dilations"], c)
    args = [to_blocked(x, 16), pack_conv_weights(w, 1)]
    if bias:
        args.append(rng.standard_normal(c).astype(np.float32))
        ref = ref + args[-1].reshape(1, -1, 1, 1)
    if res:
        r = rng.standard_normal(ref.shape).astype(np.float32)
        args.append(to_blocked(r, 16))
        ref = ref + r
    ref = activation(ref, "relu")
    out = np.full(to_blocked(ref, 16).shape, np.nan, dtype=np.float32)
    with pytest.MonkeyPatch.context() as mp:
        _force(mp, tile)
        module = ir.Module()
        blocked.emit_conv2d_blocked(
            module, "k", x_shape=p["x_shape"], w_shape=w.shape, has_bias=bias,
            has_residual=res, strides=p["strides"], pads=p["pads"],
            dilations=p["dilations"], group=c, activation="relu",
        )  # fmt: skip
        _call(module, [*args, out])
    np.testing.assert_allclose(from_blocked(out, c), ref, rtol=1e-5, atol=1e-5)
    flat = out.transpose(0, 1, 4, 2, 3).reshape(out.shape[0], -1, *out.shape[2:4])
    assert not flat[:, c:].any(), "the channel tail must be zero"


@settings(max_examples=6, deadline=None)
@given(p=window_cases(), tile=st.sampled_from(TILES))
def test_max_pool_blocked_random(p, tile):
    from nnc.ir.interpret import _max_pool

    class Flat:  # an nn.max_pool's properties for the NCHW reference
        PROPS = {"dilations": None}
        infer = staticmethod(lambda ins, props: [ins[0].__class__(out_shape)])

        def prop(self, name):
            return {"kernel": p["k"], "strides": p["strides"], "pads": p["pads"],
                    "dilations": p["dilations"], "ceil_mode": 0}[name]  # fmt: skip

        def props_dict(self):
            return {}

    rng = np.random.default_rng(0)
    x = rng.standard_normal(p["x_shape"]).astype(np.float32)
    n, c, h, w = p["x_shape"]
    oh = h + p["pads"][0] + p["pads"][2] - p["dilations"][0] * (p["k"][0] - 1) - 1
    ow = w + p["pads"][1] + p["pads"][3] - p["dilations"][1] * (p["k"][1] - 1) - 1
    out_shape = (n, c, oh // p["strides"][0] + 1, ow // p["strides"][1] + 1)
    ref = _max_pool(Flat(), x)
    xb = to_blocked(x, 16)
    out = np.full(to_blocked(ref, 16).shape, np.nan, dtype=np.float32)
    with pytest.MonkeyPatch.context() as mp:
        _force(mp, tile)
        module = ir.Module()
        blocked.emit_max_pool_blocked(
            module, "k", x_shape=(n, xb.shape[1] * 16, h, w), out_hw=out_shape[2:],
            kernel=p["k"], strides=p["strides"], pads=p["pads"], dilations=p["dilations"],
        )  # fmt: skip
        _call(module, [xb, out])
    np.testing.assert_array_equal(from_blocked(out, c), ref)
