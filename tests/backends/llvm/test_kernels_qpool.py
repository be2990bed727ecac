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
from nnc.backends.llvm.kernels.qpool import emit_qglobal_avg_pool, emit_qmax_pool2d
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
        geo = dict(kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1))
        emit_qmax_pool2d(module, "k", x_shape=(1, 64, hw, hw), ceil_mode=False, dtype="u8", **geo)
        sizes.append(len(str(module)))
    assert sizes[1] < sizes[0] * 1.1


def qgap_ref(x, x_scale, x_zp, y_scale, y_zp, dtype):
    """The nn.qglobal_avg_pool contract, written out: exact sum, one float32 rounding."""
    count = int(np.prod(x.shape[2:]))
    acc = (x.astype(np.int64) - x_zp).sum(axis=(2, 3), keepdims=True)
    m = np.float32(np.float32(x_scale) / np.float32(y_scale)) / np.float32(count)
    lo, hi = RANGE[dtype]
    return np.clip(np.rint(acc.astype(np.float32) * m) + y_zp, lo, hi).astype(NP[dtype])


@settings(max_examples=10, deadline=None)
@given(
    h=st.integers(1, 9), w=st.integers(1, 30), x_dtype=st.sampled_from(["u8", "i8"]),
    dtype=st.sampled_from(["u8", "i8"]), zp=st.integers(-20, 20), y_zp=st.integers(-5, 5),
    ys=st.floats(0.01, 2.0), seed=st.integers(0, 99),
)  # fmt: skip
def test_qglobal_avg_pool_matches_contract(h, w, x_dtype, dtype, zp, y_zp, ys, seed):
    lo, hi = RANGE[x_dtype]
    x = np.random.default_rng(seed).integers(lo, hi + 1, (2, 3, h, w)).astype(NP[x_dtype])
    x_zp = min(max(zp + (128 if x_dtype == "u8" else 0), lo), hi)
    y_zp = y_zp + (128 if dtype == "u8" else 0)
    kw = dict(x_scale=0.05, x_zp=x_zp, y_scale=ys, y_zp=y_zp, dtype=dtype)
    jit, _ = build("qgap", emit_qglobal_avg_pool, x_shape=x.shape, x_dtype=x_dtype, **kw)
    y = np.zeros((2, 3, 1, 1), NP[dtype])
    jit.call([x, y], 0)
    np.testing.assert_array_equal(y, qgap_ref(x, **kw))


def test_qglobal_avg_pool_compiled_equals_interpreter(tmp_path):
    """fold-qdq turns the float island into nn.qglobal_avg_pool; the native library and
    the interpreter agree bit for bit, and stay within one step of the float island."""
    from nnc.backends.llvm import build as build_native
    from nnc.backends.llvm import write_artifact
    from nnc.ir import GraphBuilder
    from nnc.ir.interpret import interpret
    from nnc.ir.ops_compute import GlobalAvgPoolOp
    from nnc.ir.ops_quant import DequantizeOp, QuantizeOp
    from nnc.ir.ops_shape import ReshapeOp
    from nnc.passes.pipelines import run_pipeline
    from nnc.runtime.library import NativeLibrary

    def p(s, z):
        return {"scale": np.asarray(s, np.float32), "zero_point": np.asarray(z, np.int32)}

    b = GraphBuilder()
    x = b.add_input("x", (1, 16, 7, 7))
    q = b.insert(QuantizeOp(x, dtype="u8", **p(0.03, 120)))
    pool = b.insert(GlobalAvgPoolOp(b.insert(DequantizeOp(q, **p(0.03, 120)))))
    y = b.insert(QuantizeOp(b.insert(ReshapeOp(pool, shape=(1, 16))), dtype="u8", **p(0.01, 7)))
    module = b.finish([("y", b.insert(DequantizeOp(y, **p(0.01, 7))))])
    xin = np.random.default_rng(0).uniform(-3, 3, (1, 16, 7, 7)).astype(np.float32)
    before = interpret(module, [xin])[0]
    run_pipeline(module, "fold-qdq,dce")
    names = [op.name for op in module.walk()]
    assert "nn.qglobal_avg_pool" in names and "nn.global_avg_pool" not in names
    so = write_artifact(build_native(module), tmp_path / "libq.so", "so")
    got = NativeLibrary(so, "nnc").run([xin])[0]
    want = interpret(module, [xin])[0]
    np.testing.assert_array_equal(got, want)
    assert np.max(np.abs(want - before)) <= 0.01 + 1e-6
