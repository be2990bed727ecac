"""int8 qgemm/qconv kernels: bit-for-bit against an exact integer numpy reference, for every
x86 kernel flavour the host can run (VNNI 512/256, vpmaddwd 512/256, portable widening),
each compiled for a CPU/feature string that selects it (feature gating)."""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import ir

from nnc.backends.llvm.kernels.qconv import emit_qconv
from nnc.backends.llvm.kernels.qgemm import emit_qgemm
from nnc.backends.llvm.kernels.qisa import select_qisa
from nnc.backends.llvm.targets import Target, host_target, optimize_module, parse_target

HOST = host_target()
HOST_FEATS = {f[1:] for f in HOST.features.split(",") if f.startswith("+")}
IS_X86 = HOST.arch == "x86_64"

#: flavour -> (cpu, features) selecting it, and the host features needed to run it.
FLAVOURS = {
    "vnni512": (("icelake-server", ""), {"avx512vnni", "avx512bw", "avx512vl"}),
    "vnni256": (("x86-64-v3", "+avx512f,+avx512vl,+avx512vnni"), {"avx512vnni", "avx512vl"}),
    "madd512": (("skylake-avx512", ""), {"avx512bw", "avx512vl"}),
    "madd256": (("haswell", ""), {"avx2", "fma"}),
    "widen": (("x86-64", ""), set()),
}


def flavour_target(name: str) -> Target:
    (cpu, feats), need = FLAVOURS[name]
    if not IS_X86 or not need <= HOST_FEATS:
        pytest.skip(f"host cannot run the {name} kernel")
    return Target(HOST.triple, cpu, feats)


class Jit:
    """A kernel module compiled for ``target`` (its own CPU and features) in process."""

    def __init__(self, module: ir.Module, target: Target):
        self.tm = target.target_machine(jit=True)
        module.triple = target.triple
        self.mod = llvm.parse_assembly(str(module))
        self.mod.verify()
        optimize_module(self.mod, self.tm, 3)
        self.engine = llvm.create_mcjit_compiler(self.mod, self.tm)
        self.engine.finalize_object()

    def call(self, arrays: list[np.ndarray], scratch: int) -> None:
        keep = [np.ascontiguousarray(a) for a in arrays]
        assert all(k is a for k, a in zip(keep, arrays, strict=True))
        raw = np.full(scratch + 64, 0xA5, np.uint8)
        ptrs = [a.ctypes.data for a in arrays]
        if scratch:
            ptrs.append(raw.ctypes.data + (-raw.ctypes.data) % 64)
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(ptrs)))
        proto(self.engine.get_function_address("k"))(*ptrs)


# -- the exact reference (independent of the kernels' code) -------------------------------

NP = {"u8": np.uint8, "i8": np.int8}
RANGE = {"u8": (0, 255), "i8": (-128, 127)}


def epilogue_ref(acc, q: dict, chan_axis: int):
    """The float32 epilogue of docs/quantization.md on exact int64 accumulators."""
    f32 = np.float32
    shape = [1] * acc.ndim
    shape[chan_axis] = -1
    ws = np.asarray(q["w_scale"], f32).reshape(shape)
    accf = acc.astype(f32)
    if q["y_dtype"] == "f32":
        y = accf * (f32(q["x_scale"]) * ws)
        if q["fbias"] is not None:
            y = y + q["fbias"].reshape(shape)
        if q["act"] == "relu":
            y = np.maximum(y, f32(0))
        elif q["act"] == "clip":
            y = np.minimum(np.maximum(y, f32(q["lo"])), f32(q["hi"]))
        return y.astype(f32)
    t = accf * ((f32(q["x_scale"]) * ws) / f32(q["y_scale"]))
    if q["res"] is not None:
        r = (q["res"].astype(np.int64) - q["r_zp"]).astype(f32)
        t = t + r * (f32(q["r_scale"]) / f32(q["y_scale"]))
    qmin, qmax = RANGE[q["y_dtype"]]
    lo, hi = qmin, qmax
    if q["act"] == "relu":
        lo = max(qmin, q["y_zp"])
    elif q["act"] == "clip":

        def bound(v):
            return min(max(q["y_zp"] + int(np.rint(f32(v) / f32(q["y_scale"]))), qmin), qmax)

        lo, hi = bound(q["lo"]), bound(q["hi"])
    y = np.minimum(np.maximum(np.rint(t).astype(np.float64) + q["y_zp"], lo), hi)
    return y.astype(NP[q["y_dtype"]])


def conv_acc(x, w, strides, pads, dil, group, x_zp):
    """Exact int64 ``sum (x - x_zp) * w`` of a grouped NCHW conv (padding = real zero)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64) - x_zp, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((n, m, oh, ow), np.int64)
    mg = m // group
    for gi in range(group):
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dil[0], j * dil[1]
                patch = xp[:, gi * cg:(gi + 1) * cg,
                           r0:r0 + strides[0] * (oh - 1) + 1:strides[0],
                           c0:c0 + strides[1] * (ow - 1) + 1:strides[1]]  # fmt: skip
                wk = w[gi * mg : (gi + 1) * mg, :, i, j].astype(np.int64)
                out[:, gi * mg : (gi + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, wk)
    return out


# -- case generation ----------------------------------------------------------------------


@st.composite
def quant_params(draw, m: int, out_shape, rng):
    """Dtypes, zero points, scales, bias, activation and residual for ``m`` channels."""
    x_dtype = draw(st.sampled_from(["u8", "i8"]))
    y_dtype = draw(st.sampled_from(["u8", "i8", "f32"]))
    lo, hi = RANGE[x_dtype]
    q = dict(
        x_dtype=x_dtype, y_dtype=y_dtype, x_zp=draw(st.integers(lo, hi)),
        x_scale=draw(st.floats(0.005, 0.1)), w_scale=rng.uniform(0.002, 0.05, m).astype(np.float32),
        act=draw(st.sampled_from(["none", "relu", "clip"])), lo=draw(st.floats(-2, 0.5)),
        hi=draw(st.floats(0, 6)),
        res=None, r_zp=0, r_scale=0.0, fbias=None, y_scale=1.0, y_zp=0, bias=None,
    )  # fmt: skip
    if y_dtype == "f32":
        if draw(st.booleans()):
            q["fbias"] = rng.standard_normal(m).astype(np.float32)
    else:
        ylo, yhi = RANGE[y_dtype]
        q.update(y_scale=draw(st.floats(0.01, 0.5)), y_zp=draw(st.integers(ylo, yhi)))
        if draw(st.booleans()):
            q["bias"] = rng.integers(-5000, 5000, m).astype(np.int32)
        if draw(st.booleans()):
            r_dtype = draw(st.sampled_from(["u8", "i8"]))
            rl, rh = RANGE[r_dtype]
            q.update(r_dtype=r_dtype, r_zp=draw(st.integers(rl, rh)),
                     r_scale=draw(st.floats(0.01, 0.5)),
                     res=rng.integers(rl, rh + 1, out_shape).astype(NP[r_dtype]))  # fmt: skip
    q["flavour"] = draw(st.sampled_from(sorted(FLAVOURS)))
    return q


def kernel_kwargs(q: dict) -> dict:
    kw = dict(w_scale=q["w_scale"], x_scale=q["x_scale"], x_zp=q["x_zp"], x_dtype=q["x_dtype"],
              y_dtype=q["y_dtype"], y_scale=q["y_scale"], y_zp=q["y_zp"],
              activation=q["act"], act_alpha=q["lo"], act_beta=q["hi"])  # fmt: skip
    kw["bias"] = q["fbias"] if q["y_dtype"] == "f32" else q["bias"]
    if q["res"] is not None:
        kw.update(r_scale=q["r_scale"], r_zp=q["r_zp"], r_dtype=q["r_dtype"])
    return kw


def run_kernel(emit, q: dict, x, out_shape, **params) -> np.ndarray:
    target = flavour_target(q["flavour"])
    assert select_qisa(target).name == q["flavour"]
    module = ir.Module()
    kfn = emit(module, "k", target=target, **params, **kernel_kwargs(q))
    ydt = np.float32 if q["y_dtype"] == "f32" else NP[q["y_dtype"]]
    out = np.full(out_shape, 0x5A, ydt)
    args = [x] + ([q["res"]] if q["res"] is not None else []) + [out]
    Jit(module, target).call(args, kfn.scratch_bytes)
    return out


def assert_equal(out, ref):
    assert out.dtype == ref.dtype and out.shape == ref.shape
    bad = np.argwhere(out != ref)
    assert bad.size == 0, f"{len(bad)} mismatches, first at {bad[0]}: {out[tuple(bad[0])]} != " \
        f"{ref[tuple(bad[0])]}"  # fmt: skip


@st.composite
def group1_conv_cases(draw, kernels, c_max: int, m_max: int, pad_max: int, h_max: int,
                      w_max: int):  # fmt: skip
    """(quant params, x, w, conv kwargs) of a group-1, dilation-1 conv drawn from
    ``kernels`` and strides (1, 1) / (2, 2) / (1, 2), for the 4-byte dot-product flavours."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    c, m = draw(st.integers(1, c_max)), draw(st.integers(1, m_max))
    kh, kw = draw(st.sampled_from(kernels))
    strides = draw(st.sampled_from([(1, 1), (2, 2), (1, 2)]))
    pads = tuple(draw(st.integers(0, pad_max)) for _ in range(4))
    h = draw(st.integers(max(1, kh - pads[0] - pads[2]), h_max))
    wd = draw(st.integers(max(1, kw - pads[1] - pads[3]), w_max))
    n = draw(st.integers(1, 2))
    oh = (h + pads[0] + pads[2] - kh) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - kw) // strides[1] + 1
    q = draw(quant_params(m, (n, m, oh, ow), rng))
    q["flavour"] = draw(st.sampled_from(["vnni512", "vnni256"]))
    lo, hi = RANGE[q["x_dtype"]]
    x = rng.integers(lo, hi + 1, (n, c, h, wd)).astype(NP[q["x_dtype"]])
    w = rng.integers(-128, 128, (m, c, kh, kw)).astype(np.int8)
    return q, x, w, dict(strides=strides, pads=pads, dilations=(1, 1), group=1)


@st.composite
def gemm_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    m, n, k = draw(st.integers(1, 19)), draw(st.integers(1, 70)), draw(st.integers(1, 41))
    q = draw(quant_params(n, (m, n), rng))
    lo, hi = RANGE[q["x_dtype"]]
    x = rng.integers(lo, hi + 1, (m, k)).astype(NP[q["x_dtype"]])
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    return q, x, w


def check_gemm(q, x, w, trans_b=True):
    m, n = x.shape[0], w.shape[0]
    acc = (x.astype(np.int64) - q["x_zp"]) @ w.astype(np.int64).T
    if q["bias"] is not None and q["y_dtype"] != "f32":
        acc = acc + q["bias"]
    ref = epilogue_ref(acc, q, 1)
    wk = w if trans_b else np.ascontiguousarray(w.T)
    out = run_kernel(emit_qgemm, q, x, (m, n), a_shape=x.shape, w=wk, trans_b=trans_b)
    assert_equal(out, ref)


@given(gemm_cases())
@settings(max_examples=30)
def test_qgemm_matches_exact_reference(case):
    check_gemm(*case)


@st.composite
def conv_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    depthwise = draw(st.booleans())
    group = draw(st.integers(1, 5)) if depthwise else draw(st.sampled_from([1, 1, 2]))
    cg = 1 if depthwise else draw(st.integers(1, 6))
    mg = draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 11))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]), 9))
    wd = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]), 9))
    n = draw(st.integers(1, 2))
    geo = dict(strides=strides, pads=pads, dilations=dil, group=group)
    m = mg * group
    oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    q = draw(quant_params(m, (n, m, oh, ow), rng))
    lo, hi = RANGE[q["x_dtype"]]
    x = rng.integers(lo, hi + 1, (n, cg * group, h, wd)).astype(NP[q["x_dtype"]])
    w = rng.integers(-128, 128, (m, cg, kh, kw)).astype(np.int8)
    return q, x, w, geo


def check_conv(q, x, w, geo):
    acc = conv_acc(x, w, geo["strides"], geo["pads"], geo["dilations"], geo["group"], q["x_zp"])
    if q["bias"] is not None and q["y_dtype"] != "f32":
        acc = acc + q["bias"][None, :, None, None]
    ref = epilogue_ref(acc, q, 1)
    out = run_kernel(emit_qconv, q, x, ref.shape, x_shape=x.shape, w=w, **geo)
    assert_equal(out, ref)


@given(conv_cases())
@settings(max_examples=30)
def test_qconv_matches_exact_reference(case):
    check_conv(*case)


# -- every flavour, deterministic, at the numeric extremes --------------------------------


def _extreme_q(flavour: str, x_dtype: str, m: int, out_shape, rng) -> dict:
    """Saturating inputs: |x - zp| and |w| maximal (vpmaddubsw would saturate here)."""
    r_dtype = "i8"
    return dict(
        x_dtype=x_dtype, y_dtype="i8", x_zp=0 if x_dtype == "u8" else -128, x_scale=0.02,
        w_scale=rng.uniform(0.001, 0.003, m).astype(np.float32), act="none",
        lo=0.0, hi=0.0, fbias=None,
        y_scale=1.0, y_zp=3, bias=rng.integers(-100, 100, m).astype(np.int32),
        res=rng.integers(-128, 128, out_shape).astype(np.int8), r_dtype=r_dtype, r_zp=-1,
        r_scale=0.7, flavour=flavour,
    )  # fmt: skip


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("x_dtype", ["u8", "i8"])
def test_every_flavour_extremes(flavour, x_dtype):
    rng = np.random.default_rng(7)
    lo, hi = RANGE[x_dtype]
    m, n, k = 21, 37, 67
    x = np.where(rng.random((m, k)) < 0.9, hi, lo).astype(NP[x_dtype])
    w = np.where(rng.random((n, k)) < 0.5, -128, 127).astype(np.int8)
    check_gemm(_extreme_q(flavour, x_dtype, n, (m, n), rng), x, w, trans_b=False)
    xc = np.where(rng.random((1, 8, 7, 9)) < 0.9, hi, lo).astype(NP[x_dtype])
    wc = np.where(rng.random((20, 4, 3, 3)) < 0.5, -128, 127).astype(np.int8)
    geo = dict(strides=(1, 2), pads=(1, 1, 1, 1), dilations=(1, 1), group=2)
    check_conv(_extreme_q(flavour, x_dtype, 20, (1, 20, 7, 5), rng), xc, wc, geo)


# -- feature gating -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("triple", "mcpu", "flavour"),
    [
        (None, "haswell", "madd256"),
        (None, "skylake-avx512", "madd512"),
        (None, "cascadelake", "vnni512"),
        (None, "alderlake", "vnni256"),
        (None, "x86-64", "widen"),
        (None, "icelake-server+-avx512vnni", "madd512"),
        ("aarch64-linux-gnu", None, "widen"),
        ("aarch64-linux-gnu", "cortex-a57", "widen"),
        ("aarch64-linux-gnu", "cortex-a76", "sdot"),
        ("aarch64-linux-gnu", "generic+dotprod", "sdot"),
    ],
)
def test_flavour_selection(triple, mcpu, flavour):
    if triple is None and not IS_X86:
        pytest.skip("x86 CPU names")
    assert select_qisa(parse_target(triple, mcpu)).name == flavour


@pytest.mark.skipif(not IS_X86, reason="x86 host")
@pytest.mark.parametrize(
    ("cpu", "present", "absent"),
    [
        ("cascadelake", "vpdpbusd", "vpmaddwd"),
        ("skylake-avx512", "vpmaddwd", "vpdpbusd"),
        ("haswell", "vpmaddwd", "vpdpbusd"),
        ("x86-64", "", "vpmaddwd %zmm"),
    ],
)
def test_x86_asm_gating(cpu, present, absent):
    """The instruction a flavour is built on is (not) in the code compiled for ``cpu``."""
    target = Target(HOST.triple, cpu, "")
    module = ir.Module()
    emit_qgemm(module, "k", a_shape=(8, 64), w=np.ones((48, 64), np.int8), w_scale=0.1,
               x_scale=0.1, x_zp=3, target=target)  # fmt: skip
    module.triple = target.triple
    mod = llvm.parse_assembly(str(module))
    tm = target.target_machine()
    optimize_module(mod, tm, 3)
    asm = tm.emit_assembly(mod)
    assert present in asm and absent not in asm


# -- through the IR: nn.qconv / nn.qgemm lowered, built into a library, vs the interpreter --


def add_qconv(g, rng, v, cin: int, cout: int, k: int, res=None, out_dtype="u8", act="relu"):
    """Insert an ``nn.qconv`` (k x k, stride 1, same padding, random s8 weights and int32
    bias, u8 input with zero point 9; residual zero point 11) into GraphBuilder ``g``."""
    from nnc.ir import ops_quant as oq

    w = g.constant(rng.integers(-127, 128, (cout, cin, k, k)).astype(np.int8))
    bias = g.constant(rng.integers(-2000, 2000, cout).astype(np.int32))
    extra = dict(r_scale=0.07, r_zp=11) if res is not None else {}
    return g.insert(
        oq.QConvOp(v, w, bias, res, strides=(1, 1), pads=(k // 2,) * 4, x_scale=0.05, x_zp=9,
                   w_scale=rng.uniform(0.001, 0.01, cout).astype(np.float32), y_scale=0.1,
                   y_zp=-3 if out_dtype == "i8" else 4, out_dtype=out_dtype, activation=act,
                   **extra)
    )  # fmt: skip


def test_int_ops_build_and_match_interpreter(tmp_path):
    """u8 input -> qconv(relu, bias) -> qconv(+residual, i8) -> qgemm -> u8 output."""
    from nnc.backends.llvm import build, write_artifact
    from nnc.backends.llvm.lower import lower_module
    from nnc.ir import ops_quant as oq
    from nnc.ir import ops_shape as osh
    from nnc.ir.builder import GraphBuilder
    from nnc.ir.interpret import interpret

    rng = np.random.default_rng(5)
    g = GraphBuilder()
    x = g.add_input("x", (1, 3, 8, 8), "u8")

    def qconv(v, cin, cout, res=None, out_dtype="u8", act="relu"):
        return add_qconv(g, rng, v, cin, cout, 3, res, out_dtype, act)

    h = qconv(x, 3, 8)
    h2 = qconv(h, 8, 8, res=h, out_dtype="i8", act="none")
    flat = g.insert(osh.ReshapeOp(h2, shape=(1, 512)))
    wg = g.constant(rng.integers(-127, 128, (10, 512)).astype(np.int8))
    y = g.insert(
        oq.QGemmOp(
            flat,
            wg,
            None,
            None,
            x_scale=0.1,
            x_zp=-3,
            w_scale=rng.uniform(0.001, 0.01, 10).astype(np.float32),
            y_scale=0.5,
            y_zp=128,
            out_dtype="u8",
        )  # fmt: skip
    )
    module = g.finish([("y", y)])
    xin = rng.integers(0, 256, (1, 3, 8, 8)).astype(np.uint8)
    expected = interpret(module, [xin])[0]
    assert lower_module(module).weights == []  # int8 weights live packed inside the kernels
    result = build(module, prefix="qnet")
    lib = ctypes.CDLL(str(write_artifact(result, tmp_path / "libqnet.so", "so")))
    out = np.zeros((1, 10), np.uint8)
    ins = (ctypes.c_void_p * 1)(xin.ctypes.data)
    outs = (ctypes.c_void_p * 1)(out.ctypes.data)
    lib.qnet_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    assert lib.qnet_run(ins, outs) == 0
    assert_equal(out, expected.astype(np.uint8))
