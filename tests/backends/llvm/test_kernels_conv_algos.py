"""Winograd, FFT and im2col conv kernels against the float64 conv, and a whole ResNet-18
compiled with each algorithm forced against onnxruntime."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import ir

from nnc.backends.llvm.jit import JitModule
from nnc.backends.llvm.kernels.conv_im2col import emit_conv2d_im2col
from nnc.backends.llvm.kernels.fft_conv import emit_fft_conv
from nnc.backends.llvm.kernels.winograd import emit_winograd_conv
from nnc.ir.interpret import activation, conv2d
from nnc.ir.ops_conv_algos import fft_weights, winograd_weights

U = 2.0**-24


def _run(emit, args: list[np.ndarray], out_shape, **params) -> np.ndarray:
    """Emit one kernel, JIT it, call it with NaN-filled output and scratch."""
    module = ir.Module()
    kfn = emit(module, "k", **params)
    jit = JitModule(module)
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in args]
    out = np.full(out_shape, np.nan, dtype=np.float32)
    ptrs = [a.ctypes.data for a in [*arrays, out]]
    raw = np.full(kfn.scratch_bytes + 64, 0xFF, dtype=np.uint8)  # NaN garbage
    ptrs.append(raw.ctypes.data + (-raw.ctypes.data) % 64)
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(ptrs)))
    proto(jit.address("k"))(*ptrs)
    return out


def _case(rng, n, c, h, w, m, kh, kw, pads, strides=(1, 1), dilations=(1, 1), group=1):
    x = rng.uniform(-2, 2, (n, c, h, w)).astype(np.float32)
    wt = rng.uniform(-1, 1, (m, c // group, kh, kw)).astype(np.float32)
    bias = rng.uniform(-1, 1, m).astype(np.float32)
    y = conv2d(x, wt, strides, pads, dilations, group)
    res = rng.uniform(-1, 1, y.shape).astype(np.float32)
    want = activation(y + bias.reshape(1, -1, 1, 1) + res, "relu")
    mag = conv2d(np.abs(x), np.abs(wt), strides, pads, dilations, group)
    return x, wt, bias, res, want, mag.max(axis=(2, 3), keepdims=True) + 3


def _check(got, want, bound):
    err = np.abs(got.astype(np.float64) - want)
    assert np.isfinite(got).all() and (err <= bound).all(), f"max err/bound {(err / bound).max()}"


geometry = dict(
    n=st.integers(1, 2),
    c=st.integers(1, 9),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    m=st.integers(1, 14),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    seed=st.integers(0, 2**31),
)


@settings(max_examples=8)
@given(tile=st.sampled_from([2, 4]), **geometry)
def test_winograd_kernel(tile, n, c, h, w, m, pads, seed):
    if h + pads[0] + pads[2] < 3 or w + pads[1] + pads[3] < 3:
        return
    x, wt, bias, res, want, mag = _case(np.random.default_rng(seed), n, c, h, w, m, 3, 3, pads)
    u = winograd_weights(wt, tile).astype(np.float32)
    got = _run(
        emit_winograd_conv, [x, u, bias, res], want.shape, x_shape=x.shape, u_shape=u.shape,
        tile=tile, pads=pads, has_bias=True, has_residual=True, activation="relu",
    )  # fmt: skip
    _check(got, want, {2: 16, 4: 64}[tile] * U * mag + 4 * U * np.abs(want))


@settings(max_examples=6)
@given(k=st.sampled_from([(3, 3), (5, 5), (7, 7), (1, 4)]), **geometry)
def test_fft_kernel(k, n, c, h, w, m, pads, seed):
    hp, wp = h + pads[0] + pads[2], w + pads[1] + pads[3]
    if hp < k[0] or wp < k[1]:
        return
    x, wt, bias, res, want, mag = _case(np.random.default_rng(seed), n, c, h, w, m, *k, pads)
    wf = fft_weights(wt, (hp, wp)).astype(np.float32)
    got = _run(
        emit_fft_conv, [x, wf, bias, res], want.shape, x_shape=x.shape, wf_shape=wf.shape,
        kernel=k, pads=pads, fft_shape=(hp, wp), has_bias=True, has_residual=True,
        activation="relu",
    )  # fmt: skip
    _check(got, want, 2 * (hp + wp) * U * mag + 4 * U * np.abs(want))


@pytest.mark.parametrize(
    "c,m,k,strides,dilations,group",
    [(3, 5, (3, 3), (1, 1), (1, 1), 1), (4, 6, (3, 2), (2, 1), (1, 2), 2),
     (4, 4, (3, 3), (2, 2), (1, 1), 4), (2, 17, (1, 1), (1, 1), (1, 1), 1)],
)  # fmt: skip
def test_im2col_kernel(c, m, k, strides, dilations, group):
    pads = (1, 0, 2, 1)
    x, wt, bias, res, want, mag = _case(
        np.random.default_rng(0), 2, c, 7, 8, m, *k, pads, strides, dilations, group
    )
    got = _run(
        emit_conv2d_im2col, [x, wt, bias, res], want.shape, x_shape=x.shape, w_shape=wt.shape,
        has_bias=True, has_residual=True, strides=strides, pads=pads, dilations=dilations,
        group=group, activation="relu",
    )  # fmt: skip
    _check(got, want, 4 * c * k[0] * k[1] * U * mag + 4 * U * np.abs(want))


def _resnet_check(algo: str, rtol: float = 1e-4):
    import nnc
    from nnc.testing import model_zoo
    from nnc.testing.oracle import assert_close, run_onnxruntime

    model = model_zoo.resnet18(image_size=32)
    feeds = model_zoo.random_inputs(model, seed=0)
    compiled = nnc.compile(model, conv_algo=algo)
    lines = [m for p, m in compiled.report.pass_lines if p == "select-conv-algo"]
    for got, want in zip(compiled.run(feeds), run_onnxruntime(model, feeds), strict=True):
        assert_close(got, want, rtol=rtol)
    return compiled, lines


def test_resnet18_winograd4_matches_onnxruntime():
    """Every 3x3 stride-1 conv (14 of 20) as F(4x4, 3x3); 1e-4 of max|output|."""
    compiled, lines = _resnet_check("winograd4")
    assert "winograd4: 14" in lines and "direct: 6" in lines
    assert sum(op.name == "nn.winograd_conv" for op in compiled.module.walk()) == 14


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["winograd2", "fft", "im2col", "auto"])
def test_resnet18_other_algorithms_match_onnxruntime(algo):
    _resnet_check(algo)


@pytest.mark.parametrize("algo", ["winograd4", "fft"])
def test_threaded_kernels_give_the_serial_result(tmp_path, monkeypatch, algo):
    """Winograd/FFT kernels split their stages over the pool; results equal the serial ones."""
    from llvm_testlib import ModelBuilder

    from nnc.backends.llvm import build, parallel, write_artifact
    from nnc.ir.interpret import interpret
    from nnc.passes.pipelines import run_pipeline
    from nnc.runtime import load_library

    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    g = ModelBuilder(5)
    x = g.add_input("x", (2, 6, 9, 7))
    y = g.conv(x, 8, 3, act="relu")
    y = g.conv(y, 5, 3, residual=None)
    module = g.finish([("y", y)])
    run_pipeline(module, f"select-conv-algo{{algo={algo}}}")
    libs = []
    for threads in (1, 2):
        so = write_artifact(build(module, threads=threads), tmp_path / f"l{threads}.so", "so")
        libs.append(load_library(so))
    xs = [np.random.default_rng(0).standard_normal((2, 6, 9, 7)).astype(np.float32)]
    serial, threaded = (lib.run(xs)[0] for lib in libs)
    np.testing.assert_allclose(threaded, serial, rtol=3e-7, atol=1e-6)
    np.testing.assert_allclose(serial, interpret(module, xs)[0], rtol=1e-4, atol=1e-4)
