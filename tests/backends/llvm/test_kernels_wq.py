"""Weight-only dequant-in-GEMM (kernels/wq_gemm.py, wq_conv.py) and dynamic int8 layers
(kernels/dyn_qgemm.py, dyn_quant.py) against the interpreter (nnc/ir/interpret_quant.py).

Each example builds one ``nn.wq_gemm`` / ``nn.wq_conv`` op, lowers it (so the lower.py
dispatch and the compile-time ``wq16`` packing are exercised), JIT-compiles the kernel
alone for the host and runs it on the lowered buffers. Weight-only results equal the float
layer on the decoded weight up to float summation order (bound below); dynamic results
are bit-exact (docs/quantization.md).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from llvmlite import binding as llvm
from llvmlite import ir

from nnc.backends.llvm import parallel
from nnc.backends.llvm.kernels import wq_conv
from nnc.backends.llvm.lower import emitter_function, lower_module
from nnc.backends.llvm.targets import host_target, optimize_module
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_quant import (
    ConvIntegerOp,
    DynamicQuantizeOp,
    MatMulIntegerOp,
    WQConvOp,
    WQGemmOp,
    pack_int4,
)
from nnc.ir.types import numpy_dtype

ACTS = [("none", 0.0, 0.0), ("relu", 0.0, 0.0), ("clip", -0.5, 0.7)]


@pytest.fixture(autouse=True)
def _parallel_paths(monkeypatch):
    """Outline every parallel loop (the per-task code and its scratch offsets)."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)


def build_lowered(module, feeds: list[np.ndarray]):
    """Lower ``module`` (one compute op) and JIT its kernel; (emitter, run) where ``run()``
    calls the kernel on fresh output/scratch buffers and returns the output(s)."""
    lowered = lower_module(module)
    (step,) = lowered.steps
    target = host_target()
    mod = ir.Module("wq")
    mod.triple = target.triple
    kfn = emitter_function(step.kernel.emitter)(mod, "k", **step.kernel.kwargs_dict())
    tm = target.target_machine(jit=True)
    ref = llvm.parse_assembly(str(mod))
    ref.verify()
    optimize_module(ref, tm, 3)
    engine = llvm.create_mcjit_compiler(ref, tm)
    engine.finalize_object()
    arrays = []
    for buf in step.inputs:
        if buf.kind == "weight":
            arrays.append(np.ascontiguousarray(lowered.weights[buf.index]))
        else:
            arrays.append(np.ascontiguousarray(feeds[buf.index]))
    proto = ctypes.CFUNCTYPE(
        None, *([ctypes.c_void_p] * (len(arrays) + len(step.outputs) + bool(kfn.scratch_bytes)))
    )
    kernel = proto(engine.get_function_address("k"))

    def run():
        outs = []
        for buf in step.outputs:
            spec = lowered.outputs[buf.index]
            outs.append(np.full(spec.shape, 0x5A, numpy_dtype(spec.dtype)))
        raw = np.full(kfn.scratch_bytes + 64, 0xA5, np.uint8)
        ptrs = [a.ctypes.data for a in arrays + outs]
        if kfn.scratch_bytes:
            ptrs.append(raw.ctypes.data + (-raw.ctypes.data) % 64)
        kernel(*ptrs)
        run.keep = engine  # the engine owns the code
        return outs[0] if len(outs) == 1 else outs

    return step.kernel.emitter, run


def run_lowered(module, feeds: list[np.ndarray]) -> tuple[str, np.ndarray]:
    """Lower ``module`` (one compute op), JIT its kernel, run it once; (emitter, output)."""
    emitter, run = build_lowered(module, feeds)
    return emitter, run()


def stored_weight(rng, storage: str, n: int, k: int, group_size: int, asym: bool):
    """A random stored weight and its props (as the quantize pass would produce)."""
    g = -(-k // group_size) if group_size else 1
    if storage in ("f16", "bf16"):
        w = rng.standard_normal((n, k)).astype(np.float32)
        if storage == "f16":
            return w.astype(np.float16), {}
        return (w.view(np.uint32) >> 16).astype(np.uint16), {}
    lo, hi = {"i8": (-128, 127), "i4": (-8, 7), "u4": (0, 15)}[storage]
    q = rng.integers(lo, hi + 1, (n, k))
    w = q.astype(np.int8) if storage == "i8" else pack_int4(q)
    sdt = np.float16 if storage in ("i4", "u4") else np.float32
    p = {"scale": (rng.random((n, g)) * 0.1 + 0.01).astype(sdt)}
    if asym:
        zdt = np.uint8 if storage == "u4" else np.int32
        p["zero_point"] = rng.integers(max(lo, 0), hi + 1, (n, g)).astype(zdt)
    return w, p


def float_bound(x: np.ndarray, wf: np.ndarray) -> np.ndarray:
    """Summation-order tolerance: a few ulps of sum |x||w| per output."""
    return 4e-6 * (np.abs(x.astype(np.float64)) @ np.abs(wf.astype(np.float64)).T) + 1e-6


@st.composite
def wq_gemm_cases(draw):
    storage = draw(st.sampled_from(["i8", "i4", "u4", "f16", "bf16"]))
    k = draw(st.integers(1, 200))
    gs = draw(st.sampled_from([0, 0, 1, 7, 16, 32, 64])) if storage in ("i8", "i4", "u4") else 0
    gs = 0 if gs >= k else gs
    return dict(
        seed=draw(st.integers(0, 2**16)), storage=storage, m=draw(st.integers(1, 30)), k=k,
        n=draw(st.integers(1, 70)), gs=gs, asym=storage == "u4" or (storage == "i8" and
        draw(st.booleans())), bias=draw(st.booleans()), res=draw(st.booleans()),
        act=draw(st.sampled_from(ACTS)),
    )  # fmt: skip


@given(wq_gemm_cases())
@settings(max_examples=14, deadline=None)
def test_wq_gemm_dequant_in_gemm_matches_interpreter(c):
    rng = np.random.default_rng(c["seed"])
    m, k, n = c["m"], c["k"], c["n"]
    w, props = stored_weight(rng, c["storage"], n, k, c["gs"], c["asym"])
    b = GraphBuilder()
    x = b.add_input("x", (m, k))
    feeds = [rng.standard_normal((m, k)).astype(np.float32)]
    bias = b.constant(rng.standard_normal(n).astype(np.float32)) if c["bias"] else None
    res = b.add_input("r", (m, n)) if c["res"] else None
    if res is not None:
        feeds.append(rng.standard_normal((m, n)).astype(np.float32))
    act, alpha, beta = c["act"]
    y = b.insert(WQGemmOp(x, b.constant(w), bias, res, w_shape=(n, k), storage=c["storage"],
                          group_size=c["gs"], activation=act, act_alpha=alpha, act_beta=beta,
                          **props))  # fmt: skip
    module = b.finish([("y", y)])
    emitter, got = run_lowered(module, feeds)
    assert emitter == "wq_gemm"
    want = interpret(module, feeds)[0]
    from nnc.ir.interpret_quant import decode_weight_array

    op = next(o for o in module.walk() if isinstance(o, WQGemmOp))
    wf = decode_weight_array(op.props_dict(), w)
    np.testing.assert_array_less(np.abs(got - want), float_bound(feeds[0], wf))


@st.composite
def wq_conv_cases(draw):
    storage = draw(st.sampled_from(["i8", "i4", "u4", "f16"]))
    cin, kh, kw = draw(st.integers(2, 12)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = cin * kh * kw
    gs = draw(st.sampled_from([0, 9, 32])) if storage != "f16" else 0
    return dict(
        seed=draw(st.integers(0, 2**16)), storage=storage, cin=cin, kh=kh, kw=kw,
        m=draw(st.integers(8, 40)), n=draw(st.integers(1, 2)), gs=0 if gs >= k else gs,
        h=draw(st.integers(3, 9)), w=draw(st.integers(3, 9)), stride=draw(st.integers(1, 2)),
        pad=draw(st.integers(0, 1)), asym=storage == "u4", bias=draw(st.booleans()),
        res=draw(st.booleans()), act=draw(st.sampled_from(ACTS)),
        path=draw(st.sampled_from(["gemm", "tile", "direct", "winograd2", "winograd4"])),
    )  # fmt: skip


@given(wq_conv_cases())
@settings(max_examples=10, deadline=None)
def test_wq_conv_matches_interpreter(c):
    """Every wq_conv path: im2col + wq_gemm, per-tile decode, decode-once + float32 direct
    or Winograd (wq_cache.py; Winograd only where it applies, else direct)."""
    rng = np.random.default_rng(c["seed"])
    m, cin, kh, kw = c["m"], c["cin"], c["kh"], c["kw"]
    w, props = stored_weight(rng, c["storage"], m, cin * kh * kw, c["gs"], c["asym"])
    b = GraphBuilder()
    xs = (c["n"], cin, c["h"], c["w"])
    x = b.add_input("x", xs)
    feeds = [rng.standard_normal(xs).astype(np.float32)]
    s, p = c["stride"], c["pad"]
    oh, ow = (c["h"] + 2 * p - kh) // s + 1, (c["w"] + 2 * p - kw) // s + 1
    bias = b.constant(rng.standard_normal(m).astype(np.float32)) if c["bias"] else None
    res = b.add_input("r", (c["n"], m, oh, ow)) if c["res"] else None
    if res is not None:
        feeds.append(rng.standard_normal((c["n"], m, oh, ow)).astype(np.float32))
    act, alpha, beta = c["act"]
    y = b.insert(WQConvOp(x, b.constant(w), bias, res, w_shape=(m, cin, kh, kw),
                          storage=c["storage"], group_size=c["gs"], strides=(s, s),
                          pads=(p, p, p, p), activation=act, act_alpha=alpha, act_beta=beta,
                          **props))  # fmt: skip
    module = b.finish([("y", y)])
    saved = wq_conv.GEMM_PIXELS, wq_conv.ALGO
    wq_conv.GEMM_PIXELS = 10**9 if c["path"] == "gemm" else 0  # im2col + wq_gemm, or per tile
    wq_conv.ALGO = "tile" if c["path"] in ("gemm", "tile") else c["path"]
    try:
        emitter, run = build_lowered(module, feeds)
        got = run()
        again = run()  # decode-once paths: the second run uses the decoded cache
    finally:
        wq_conv.GEMM_PIXELS, wq_conv.ALGO = saved
    assert emitter in ("wq_conv", "wq_layer")  # tiny K on big planes keeps the fallback
    np.testing.assert_array_equal(again, got)
    want = interpret(module, feeds)[0]
    scale = np.abs(want).max() + 1
    wino = {"winograd2": 8, "winograd4": 32}.get(c["path"], 1) if kh == kw == 3 and s == 1 else 1
    atol = 2e-5 * wino * scale * np.sqrt(cin * kh * kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


def test_wq_conv_decode_once_is_thread_safe():
    """Concurrent first runs of a decode-once kernel (state word + cmpxchg, wq_cache.py)
    all see the fully decoded weight: every output equals a later serial run's."""
    import threading

    rng = np.random.default_rng(7)
    w, props = stored_weight(rng, "i4", 64, 32 * 9, 32, False)
    b = GraphBuilder()
    x = b.add_input("x", (1, 32, 12, 12))
    feeds = [rng.standard_normal((1, 32, 12, 12)).astype(np.float32)]
    y = b.insert(WQConvOp(x, b.constant(w), None, None, w_shape=(64, 32, 3, 3), storage="i4",
                          group_size=32, pads=(1, 1, 1, 1), **props))  # fmt: skip
    module = b.finish([("y", y)])
    saved, wq_conv.ALGO = wq_conv.ALGO, "winograd4"
    try:
        emitter, run = build_lowered(module, feeds)
    finally:
        wq_conv.ALGO = saved
    outs = [None] * 6

    def worker(i):
        outs[i] = run()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(outs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = run()
    for got in outs:
        np.testing.assert_array_equal(got, want)
    ref = interpret(module, feeds)[0]
    np.testing.assert_allclose(want, ref, rtol=0, atol=1e-4 * (np.abs(ref).max() + 1))


@st.composite
def dyn_cases(draw):
    conv = draw(st.booleans())
    return dict(
        seed=draw(st.integers(0, 2**16)), conv=conv, m=draw(st.integers(1, 20)),
        k=draw(st.integers(1, 150)), n=draw(st.integers(1, 60)), group=draw(st.sampled_from(
        [1, 1, 2])), shift=draw(st.sampled_from([0.0, 2.0, -3.0])), spread=draw(
        st.sampled_from([1.0, 1e-3, 50.0])), bias=draw(st.booleans()), res=draw(st.booleans()),
        act=draw(st.sampled_from([*ACTS, ("leaky_relu", 0.1, 0.0)])),
    )  # fmt: skip


def _gelu_gemm_case(seed: int, m: int, k: int, n: int, shift: float, bias: bool) -> dict:
    """A dynamic Gemm with residual and GELU: the post pass after the epilogue."""
    return dict(seed=seed, conv=False, m=m, k=k, n=n, group=1, shift=shift, spread=1.0,
                bias=bias, res=True, act=("gelu", 0.0, 0.0))  # fmt: skip


@given(dyn_cases())
@settings(max_examples=10, deadline=None)
@example(_gelu_gemm_case(7, 37, 70, 50, 0.0, True))  # few row blocks: passes around the tiles
@example(_gelu_gemm_case(8, 70, 33, 40, 2.0, False))  # >= HOOK_ROW_BLOCKS: in the row tasks
def test_dynamic_layers_on_int8_kernels_are_bit_exact(c):
    rng = np.random.default_rng(c["seed"])
    b = GraphBuilder()
    act, alpha, beta = c["act"]
    epi = dict(act_quant="dynamic", storage="i8", activation=act, act_alpha=alpha,
               act_beta=beta)  # fmt: skip
    if c["conv"]:
        g = c["group"]
        cin, m = 2 * g * (1 + c["k"] % 3), g * (1 + c["n"] % 9)
        xs, ws = (1 + c["m"] % 2, cin, 6, 5), (m, cin // g, 3, 2)
        oshape = (xs[0], m, 3, 3)
        geo = dict(strides=(2, 2), pads=(1, 0, 0, 1), group=g)
    else:
        xs, ws, oshape, geo = (c["m"], c["k"]), (c["n"], c["k"]), (c["m"], c["n"]), {}
    x = b.add_input("x", xs)
    feeds = [(rng.standard_normal(xs) * c["spread"] + c["shift"]).astype(np.float32)]
    flat = feeds[0].reshape(-1)
    flat[:3] = [0.0, c["shift"], -c["shift"]][: flat.size]
    wq = rng.integers(-127, 128, (ws[0], int(np.prod(ws[1:])))).astype(np.int8)
    scale = (rng.random((ws[0], 1)) * 0.05 + 1e-3).astype(np.float32)
    bias = b.constant(rng.standard_normal(ws[0]).astype(np.float32)) if c["bias"] else None
    res = b.add_input("r", oshape) if c["res"] else None
    if res is not None:
        feeds.append(rng.standard_normal(oshape).astype(np.float32))
    op = WQConvOp if c["conv"] else WQGemmOp
    y = b.insert(op(x, b.constant(wq), bias, res, w_shape=ws, scale=scale, **epi, **geo))
    module = b.finish([("y", y)])
    emitter, got = run_lowered(module, feeds)
    assert emitter == ("dyn_conv" if c["conv"] else "dyn_gemm")
    want = interpret(module, feeds)[0]
    if act in ("leaky_relu", "gelu"):  # activation after the epilogue: same float ops
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(got, want)


def test_depthwise_dynamic_conv_keeps_the_exact_fallback():
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.add_input("x", (1, 4, 5, 5))
    wq = rng.integers(-127, 128, (4, 9)).astype(np.int8)
    y = b.insert(WQConvOp(x, b.constant(wq), None, None, w_shape=(4, 1, 3, 3), group=4,
                          pads=(1, 1, 1, 1), act_quant="dynamic", storage="i8",
                          scale=np.full((4, 1), 0.02, np.float32)))  # fmt: skip
    module = b.finish([("y", y)])
    feeds = [rng.standard_normal((1, 4, 5, 5)).astype(np.float32)]
    emitter, got = run_lowered(module, feeds)
    assert emitter == "dyn_qlayer"
    np.testing.assert_array_equal(got, interpret(module, feeds)[0])


@given(st.integers(0, 2**16), st.integers(1, 300), st.sampled_from([0.0, 3.0, -1.0]))
@settings(max_examples=8, deadline=None)
def test_dynamic_quantize_linear_is_bit_exact(seed, size, shift):
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    q, s, z = b.insert_multi(DynamicQuantizeOp(b.add_input("x", (size,))))
    module = b.finish([("q", q), ("s", s), ("z", z)])
    x = (rng.standard_normal(size) + shift).astype(np.float32)
    x[: min(size, 4)] = np.float32([0.5, 1.5, -2.5, 0.0])[: min(size, 4)] * 0.2  # ties
    _, got = run_lowered(module, [x])
    for g, w in zip(got, interpret(module, [x]), strict=True):
        np.testing.assert_array_equal(g, w)


@st.composite
def int_op_cases(draw):
    return dict(
        seed=draw(st.integers(0, 2**16)), conv=draw(st.booleans()),
        dt=(draw(st.sampled_from(["u8", "i8"])), draw(st.sampled_from(["u8", "i8"]))),
        zp=(draw(st.booleans()), draw(st.sampled_from([None, "scalar", "vector"]))),
        m=draw(st.integers(1, 9)), k=draw(st.integers(1, 40)), n=draw(st.integers(1, 40)),
        stride=draw(st.integers(1, 3)), dil=draw(st.integers(1, 2)),
        pads=tuple(draw(st.integers(0, 2)) for _ in range(4)), group=draw(st.sampled_from([1, 2])),
    )  # fmt: skip


@given(int_op_cases())
@settings(max_examples=10, deadline=None)
def test_onnx_integer_ops_match_interpreter(c):
    rng = np.random.default_rng(c["seed"])
    lo = {"u8": 0, "i8": -128}

    def ints(dtype, shape):
        return rng.integers(lo[dtype], lo[dtype] + 256, shape).astype(numpy_dtype(dtype))

    b = GraphBuilder()
    (xd, wd), (has_xzp, wzp) = c["dt"], c["zp"]
    g = c["group"]
    if c["conv"]:
        xs, ws = (1 + c["m"] % 2, 2 * g, 4 + c["k"] % 6, 3 + c["n"] % 7), (3 * g, 2, 3, 2)
        nz = ws[0]
    else:
        xs, ws, nz = (c["m"], c["k"]), (c["k"], c["n"]), c["n"]
    feeds = [ints(xd, xs)]
    ops = [b.add_input("x", xs, xd), b.constant(ints(wd, ws))]
    ops.append(b.add_input("xz", (), xd) if has_xzp else None)
    if has_xzp:
        feeds.append(ints(xd, ()))
    ops.append(b.constant(ints(wd, (nz,) if wzp == "vector" else ())) if wzp else None)
    if c["conv"]:
        geo = dict(strides=(c["stride"], 1), dilations=(1, c["dil"]), pads=c["pads"], group=g)
        y = b.insert(ConvIntegerOp(*ops, **geo))
    else:
        y = b.insert(MatMulIntegerOp(*ops))
    module = b.finish([("y", y)])
    _, got = run_lowered(module, feeds)
    np.testing.assert_array_equal(got, interpret(module, feeds)[0])
