"""Conv2d, Gemm/MatMul, pooling and LRN kernels against numpy references and onnxruntime."""

from __future__ import annotations

import ctypes

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from llvmlite import ir
from onnx import TensorProto, helper

from nnc.backends.llvm.jit import JitModule
from nnc.backends.llvm.kernels import conv2d, gemm
from nnc.backends.llvm.kernels.conv2d import emit_conv2d
from nnc.backends.llvm.kernels.gemm import TileShape, emit_gemm, emit_matmul
from nnc.backends.llvm.kernels.lrn import emit_lrn
from nnc.backends.llvm.kernels.pool import emit_avg_pool2d, emit_global_pool, emit_max_pool2d

ACTS = {
    "none": (lambda y: y, 0.0, 0.0),
    "relu": (lambda y: np.maximum(y, 0.0), 0.0, 0.0),
    "leaky_relu": (lambda y: np.where(y < 0, 0.1 * y, y), 0.1, 0.0),
    "clip": (lambda y: np.clip(y, -0.5, 6.0), -0.5, 6.0),
    "sigmoid": (lambda y: 1.0 / (1.0 + np.exp(-y)), 0.0, 0.0),
    "gelu_tanh": (
        lambda y: 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y**3))),
        0.0,
        0.0,
    ),
}


def _run(emit, args: list[np.ndarray], out_shape, **params) -> np.ndarray:
    """Emit one kernel, JIT it, call it on ``args`` with a NaN-filled scratch; return out."""
    module = ir.Module()
    kfn = emit(module, "k", **params)
    jit = JitModule(module)
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in args]
    out = np.full(out_shape, np.nan, dtype=np.float32)
    ptrs = [a.ctypes.data for a in [*arrays, out]]
    if kfn.scratch_bytes:
        raw = np.full(kfn.scratch_bytes + 64, 0xFF, dtype=np.uint8)  # NaN garbage
        ptrs.append(raw.ctypes.data + (-raw.ctypes.data) % 64)
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(ptrs)))
    proto(jit.address("k"))(*ptrs)
    return out


def _check(out: np.ndarray, ref: np.ndarray, rel: float = 1e-4) -> None:
    assert out.shape == ref.shape
    tol = rel * max(float(np.abs(ref).max(initial=0.0)), 1.0)
    err = float(np.abs(out - ref).max(initial=0.0))
    assert err <= tol, f"max error {err} > {tol}"


def _ort(op: str, inputs: dict[str, np.ndarray], **attrs) -> np.ndarray:
    """Run a one-node ONNX model on onnxruntime."""
    node = helper.make_node(op, list(inputs), ["y"], **attrs)
    vi = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in inputs.items()]
    graph = helper.make_graph(
        [node], "g", vi, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)[0]


# ---------------------------------------------------------------- conv


def conv_ref(x, w, bias, strides, pads, dilations, group):
    """Direct float64 NCHW convolution: sum over taps of strided slices of the padded x."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = strides, dilations
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, m, oh, ow))
    mg = m // group
    for g in range(group):
        xg = xp[:, g * cg : (g + 1) * cg]
        wg = w[g * mg : (g + 1) * mg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                           j * dw : j * dw + sw * (ow - 1) + 1 : sw]  # fmt: skip
                out[:, g * mg : (g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, wg[:, :, i, j])
    if bias is not None:
        out += bias[None, :, None, None]
    return out


@st.composite
def conv_cases(draw):
    depthwise = draw(st.booleans())
    group = draw(st.integers(1, 6)) if depthwise else draw(st.sampled_from([1, 1, 2, 3]))
    cg = 1 if depthwise else draw(st.integers(1, 5))
    mg = draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 11))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]), 12))
    w = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]), 12))
    n = draw(st.integers(1, 2))
    return dict(
        x_shape=(n, cg * group, h, w), w_shape=(mg * group, cg, kh, kw), strides=strides,
        pads=pads, dilations=dil, group=group, has_bias=draw(st.booleans()),
        has_residual=draw(st.booleans()), activation=draw(st.sampled_from(sorted(ACTS))),
    )  # fmt: skip


def _conv_check(p: dict, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(p["x_shape"]).astype(np.float32)
    w = rng.standard_normal(p["w_shape"]).astype(np.float32)
    bias = rng.standard_normal(p["w_shape"][0]).astype(np.float32) if p["has_bias"] else None
    ref = conv_ref(x, w, bias, p["strides"], p["pads"], p["dilations"], p["group"])
    args = [x, w] + ([bias] if bias is not None else [])
    if p["has_residual"]:
        res = rng.standard_normal(ref.shape).astype(np.float32)
        args.append(res)
        ref = ref + res
    act = p.get("activation", "none")
    fn, a, b = ACTS[act]
    out = _run(emit_conv2d, args, ref.shape, **p, act_alpha=a, act_beta=b)
    _check(out, fn(ref))


@given(conv_cases())
def test_conv2d_random(p):
    _conv_check(p)


@pytest.mark.parametrize(
    "tile", [TileShape(8, 6, 2), TileShape(4, 8, 3), TileShape(4, 4, 2), TileShape(1, 4, 4)]
)
@pytest.mark.parametrize(
    "x_shape,w_shape,group,strides,pads",
    [
        ((1, 5, 11, 9), (13, 5, 3, 3), 1, (1, 1), (1, 1, 1, 1)),
        ((2, 6, 10, 10), (6, 1, 3, 3), 6, (2, 2), (1, 0, 1, 2)),
        ((1, 6, 9, 13), (9, 2, 2, 3), 3, (1, 2), (0, 2, 1, 0)),
    ],
)
def test_conv2d_other_tiles(monkeypatch, tile, x_shape, w_shape, group, strides, pads):
    """The AVX2 / NEON / ARMv7 / Cortex-M tile shapes (run on the host) give the same conv."""
    monkeypatch.setattr(conv2d, "tile_shape", lambda module: tile)
    p = dict(x_shape=x_shape, w_shape=w_shape, group=group, strides=strides, pads=pads,
             dilations=(1, 1), has_bias=True, has_residual=True, activation="relu")  # fmt: skip
    _conv_check(p)


def test_conv2d_resnet_shapes():
    """A 7x7/2 stem and a 3x3 block conv (multi-tile, full micro tiles)."""
    _conv_check(dict(x_shape=(1, 3, 40, 38), w_shape=(16, 3, 7, 7), strides=(2, 2),
                     pads=(3, 3, 3, 3), dilations=(1, 1), group=1, has_bias=True,
                     has_residual=False, activation="relu"))  # fmt: skip
    _conv_check(dict(x_shape=(1, 24, 14, 14), w_shape=(40, 24, 3, 3), strides=(1, 1),
                     pads=(1, 1, 1, 1), dilations=(1, 1), group=1, has_bias=False,
                     has_residual=True, activation="relu"))  # fmt: skip


@pytest.mark.parametrize(
    "x_shape,w_shape,attrs",
    [
        ((1, 4, 9, 8), (6, 2, 3, 3), dict(group=2, strides=[2, 1], pads=[1, 0, 2, 1])),
        ((2, 3, 10, 7), (5, 3, 3, 2), dict(group=1, dilations=[2, 3], pads=[2, 3, 1, 3])),
        ((1, 8, 7, 7), (16, 1, 5, 5), dict(group=8, strides=[2, 2], pads=[2, 2, 2, 2])),
    ],
)
def test_conv2d_vs_onnxruntime(x_shape, w_shape, attrs):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    attrs = dict(strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1]) | attrs
    ref = _ort("Conv", {"x": x, "w": w, "b": bias}, **attrs)
    p = attrs["pads"]
    out = _run(emit_conv2d, [x, w, bias], ref.shape, x_shape=x_shape, w_shape=w_shape,
               has_bias=True, strides=tuple(attrs["strides"]), pads=(p[0], p[1], p[2], p[3]),
               dilations=tuple(attrs["dilations"]), group=attrs["group"])  # fmt: skip
    _check(out, ref)


# ---------------------------------------------------------------- gemm / matmul


@given(
    m=st.integers(1, 20), k=st.integers(1, 40), n=st.integers(1, 40),
    trans_a=st.booleans(), trans_b=st.booleans(),
    alpha=st.sampled_from([1.0, 0.5]), beta=st.sampled_from([1.0, -2.0]),
    c_kind=st.sampled_from(["none", "n", "1n", "m1", "mn", "1", "scalar"]),
    act=st.sampled_from(sorted(ACTS)),
)  # fmt: skip
def test_gemm_random(m, k, n, trans_a, trans_b, alpha, beta, c_kind, act):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c_shape = {"none": None, "n": (n,), "1n": (1, n), "m1": (m, 1), "mn": (m, n), "1": (1,),
               "scalar": ()}[c_kind]  # fmt: skip
    ref = alpha * ((a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b))
    args = [a, b]
    if c_shape is not None:
        c = rng.standard_normal(c_shape).astype(np.float32)
        args.append(c)
        ref = ref + beta * c
    fn, aa, bb = ACTS[act]
    out = _run(emit_gemm, args, (m, n), a_shape=a.shape, b_shape=b.shape, trans_a=trans_a,
               trans_b=trans_b, alpha=alpha, beta=beta, c_shape=c_shape, activation=act,
               act_alpha=aa, act_beta=bb)  # fmt: skip
    _check(out, fn(ref))


@pytest.mark.parametrize("tile", [TileShape(8, 6, 2), TileShape(4, 8, 3), TileShape(1, 4, 4)])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_other_tiles(monkeypatch, tile, trans_b):
    monkeypatch.setattr(gemm, "tile_shape", lambda module: tile)
    rng = np.random.default_rng(5)
    a = rng.standard_normal((23, 37)).astype(np.float32)
    b = rng.standard_normal((50, 37) if trans_b else (37, 50)).astype(np.float32)
    out = _run(emit_gemm, [a, b], (23, 50), a_shape=a.shape, b_shape=b.shape, trans_a=False,
               trans_b=trans_b, alpha=1.0, beta=1.0)  # fmt: skip
    _check(out, a.astype(np.float64) @ (b.T if trans_b else b))


def test_gemm_vs_onnxruntime():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((30, 7)).astype(np.float32)
    b = rng.standard_normal((45, 30)).astype(np.float32)
    c = rng.standard_normal((45,)).astype(np.float32)
    ref = _ort("Gemm", {"a": a, "b": b, "c": c}, transA=1, transB=1, alpha=0.7, beta=1.5)
    out = _run(emit_gemm, [a, b, c], ref.shape, a_shape=a.shape, b_shape=b.shape, trans_a=True,
               trans_b=True, alpha=0.7, beta=1.5, c_shape=c.shape)  # fmt: skip
    _check(out, ref)


@given(
    batch=st.sampled_from([((), ()), ((3,), ()), ((), (2,)), ((2, 1), (3,)), ((1, 4), (2, 1)),
                           ((2, 3), (2, 3)), ((1,), (1,))]),
    m=st.integers(1, 19), k=st.integers(1, 33), n=st.integers(1, 37),
)  # fmt: skip
def test_matmul_random(batch, m, k, n):
    rng = np.random.default_rng(m + 100 * k + 10000 * n)
    a = rng.standard_normal((*batch[0], m, k)).astype(np.float32)
    b = rng.standard_normal((*batch[1], k, n)).astype(np.float32)
    ref = np.matmul(a.astype(np.float64), b)
    out = _run(emit_matmul, [a, b], ref.shape, a_shape=a.shape, b_shape=b.shape)
    _check(out, ref)


# ---------------------------------------------------------------- pooling


def _out_len(size, k, s, pb, pe, d, ceil_mode):
    span = size + pb + pe - d * (k - 1) - 1
    out = (int(np.ceil(span / s)) if ceil_mode else span // s) + 1
    return out - 1 if ceil_mode and (out - 1) * s >= size + pb else out


def pool_ref(x, kind, kernel, strides, pads, dilations, ceil_mode, include_pad=False):
    """Element-by-element pooling with onnxruntime's ceil_mode / divisor rules."""
    _, _, h, w = x.shape
    oh = _out_len(h, kernel[0], strides[0], pads[0], pads[2], dilations[0], ceil_mode)
    ow = _out_len(w, kernel[1], strides[1], pads[1], pads[3], dilations[1], ceil_mode)
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = [i * strides[0] - pads[0] + t * dilations[0] for t in range(kernel[0])]
            cols = [j * strides[1] - pads[1] + t * dilations[1] for t in range(kernel[1])]
            vr = [r for r in rows if 0 <= r < h]
            vc = [c for c in cols if 0 <= c < w]
            win = x[:, :, vr][:, :, :, vc].astype(np.float64)
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3)) if win.size else -3.4028234663852886e38
                continue
            if include_pad:
                cnt = sum(-pads[0] <= r < h + pads[2] for r in rows)
                cnt *= sum(-pads[1] <= c < w + pads[3] for c in cols)
            else:
                cnt = len(vr) * len(vc)
            out[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return out


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    pads = tuple(draw(st.integers(0, kernel[i % 2] - 1)) for i in range(4))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(max(1, dil[0] * (kernel[0] - 1) + 1 - pads[0] - pads[2]), 13))
    w = draw(st.integers(max(1, dil[1] * (kernel[1] - 1) + 1 - pads[1] - pads[3]), 13))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return (2, 3, h, w), kernel, strides, pads, dil, draw(st.booleans()), draw(st.booleans())


@given(pool_cases())
def test_max_pool_random(case):
    x_shape, kernel, strides, pads, dil, ceil_mode, _ = case
    x = np.random.default_rng(7).standard_normal(x_shape).astype(np.float32)
    ref = pool_ref(x, "max", kernel, strides, pads, dil, ceil_mode)
    out = _run(emit_max_pool2d, [x], ref.shape, x_shape=x_shape, kernel=kernel, strides=strides,
               pads=pads, dilations=dil, ceil_mode=ceil_mode)  # fmt: skip
    _check(out, ref)


@given(pool_cases())
def test_avg_pool_random(case):
    x_shape, kernel, strides, pads, _, ceil_mode, include_pad = case
    x = np.random.default_rng(8).standard_normal(x_shape).astype(np.float32)
    ref = pool_ref(x, "avg", kernel, strides, pads, (1, 1), ceil_mode, include_pad)
    out = _run(emit_avg_pool2d, [x], ref.shape, x_shape=x_shape, kernel=kernel, strides=strides,
               pads=pads, ceil_mode=ceil_mode, count_include_pad=include_pad)  # fmt: skip
    _check(out, ref)


@pytest.mark.parametrize(
    "h,w,kernel,strides,pads,ceil_mode",
    [
        (6, 6, (3, 3), (2, 2), (1, 1, 1, 1), True),
        (6, 7, (3, 3), (2, 2), (0, 0, 2, 2), True),
        (5, 5, (2, 2), (2, 2), (0, 0, 1, 1), True),
        (9, 8, (3, 2), (3, 2), (1, 0, 0, 1), False),
        (5, 5, (1, 1), (3, 3), (0, 0, 0, 0), True),
    ],
)
@pytest.mark.parametrize("include_pad", [False, True])
def test_pool_vs_onnxruntime(h, w, kernel, strides, pads, ceil_mode, include_pad):
    x = np.random.default_rng(9).standard_normal((1, 2, h, w)).astype(np.float32)
    attrs = dict(kernel_shape=list(kernel), strides=list(strides), pads=list(pads),
                 ceil_mode=int(ceil_mode))  # fmt: skip
    ref = _ort("AveragePool", {"x": x}, count_include_pad=int(include_pad), **attrs)
    out = _run(emit_avg_pool2d, [x], ref.shape, x_shape=x.shape, kernel=kernel, strides=strides,
               pads=pads, ceil_mode=ceil_mode, count_include_pad=include_pad)  # fmt: skip
    _check(out, ref)
    ref = _ort("MaxPool", {"x": x}, **attrs)
    out = _run(emit_max_pool2d, [x], ref.shape, x_shape=x.shape, kernel=kernel, strides=strides,
               pads=pads, dilations=(1, 1), ceil_mode=ceil_mode)  # fmt: skip
    _check(out, ref)


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("x_shape", [(2, 3, 7, 7), (1, 5, 1, 1), (1, 4, 33, 17)])
def test_global_pool(kind, x_shape):
    x = np.random.default_rng(10).standard_normal(x_shape).astype(np.float32)
    ref = x.mean(axis=(2, 3), keepdims=True) if kind == "avg" else x.max(axis=(2, 3), keepdims=True)
    _check(_run(emit_global_pool, [x], ref.shape, x_shape=x_shape, kind=kind), ref)


# ---------------------------------------------------------------- LRN


def lrn_ref(x, size, alpha, beta, bias):
    c = x.shape[1]
    sq = x.astype(np.float64) ** 2
    acc = np.zeros_like(sq)
    for ci in range(c):
        lo, hi = max(0, ci - (size - 1) // 2), min(c - 1, ci + size // 2)
        acc[:, ci] = sq[:, lo : hi + 1].sum(axis=1)
    return x / (bias + alpha / size * acc) ** beta


@pytest.mark.parametrize("size,beta", [(5, 0.75), (3, 0.6), (2, 0.5), (4, 1.0), (1, 0.75)])
def test_lrn(size, beta):
    x = np.random.default_rng(11).standard_normal((2, 7, 5, 6)).astype(np.float32)
    ref = lrn_ref(x, size, 0.3, beta, 1.5)
    out = _run(emit_lrn, [x], x.shape, x_shape=x.shape, size=size, alpha=0.3, beta=beta, bias=1.5)
    _check(out, ref)
    if size % 2:  # onnxruntime only implements odd sizes
        _check(out, _ort("LRN", {"x": x}, size=size, alpha=0.3, beta=beta, bias=1.5))
