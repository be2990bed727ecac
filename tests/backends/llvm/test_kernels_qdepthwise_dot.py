"""int8 depthwise conv on byte shuffles + dot products (``kernels/qdepthwise_dot.py``):
bit-for-bit against the exact integer reference (strides 1/2/4, pads, dilations, u8/i8
inputs, residual + relu, f32 outputs, row widths around the 16/8/4-lane chunks, 1x1 to
7x7 kernels, channel multipliers), selection/fallback rules, and bitwise equality of the
threaded build."""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
import pytest
from hypothesis import given, settings
from llvmlite import ir
from test_kernels_qdepthwise import check, depthwise_cases
from test_kernels_quant import (
    HOST,
    NP,
    RANGE,
    Jit,
    flavour_target,
    kernel_kwargs,
)

from nnc.backends.llvm import parallel
from nnc.backends.llvm.kernels import qdepthwise_dot as qdd
from nnc.backends.llvm.kernels.qconv import emit_qconv
from nnc.backends.llvm.kernels.qisa import ISAS, select_qisa
from nnc.backends.llvm.targets import Target, optimize_module


def _q(rng, x_dtype: str, y_dtype: str, m: int, out_shape, act: str, res: bool) -> dict:
    lo, hi = RANGE[x_dtype]
    q = dict(
        x_dtype=x_dtype, y_dtype=y_dtype, x_zp=int(rng.integers(lo, hi + 1)), x_scale=0.03,
        w_scale=rng.uniform(0.002, 0.02, m).astype(np.float32), act=act, lo=-0.5, hi=3.0,
        fbias=None, y_scale=0.2, y_zp=-3 if y_dtype == "i8" else 9, bias=None, res=None,
        r_zp=0, r_scale=0.0, flavour="vnni512",
    )  # fmt: skip
    if y_dtype == "f32":
        q.update(y_scale=1.0, y_zp=0, fbias=rng.standard_normal(m).astype(np.float32))
        q["act"] = "relu" if act == "relu" else "none"
        return q
    q["bias"] = rng.integers(-4000, 4000, m).astype(np.int32)
    if res:
        r_dtype = "u8" if rng.integers(2) else "i8"
        rl, rh = RANGE[r_dtype]
        q.update(r_dtype=r_dtype, r_zp=int(rng.integers(rl, rh + 1)), r_scale=0.15,
                 res=rng.integers(rl, rh + 1, out_shape).astype(NP[r_dtype]))  # fmt: skip
    return q


def _case(seed, c, h, wd, k, stride, pad, x_dtype="u8", y_dtype="u8", act="relu", res=False,
          mg=1, dil=1, n=1):  # fmt: skip
    rng = np.random.default_rng(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    oh = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    m = c * mg
    q = _q(rng, x_dtype, y_dtype, m, (n, m, oh, ow), act, res)
    lo, hi = RANGE[x_dtype]
    x = rng.integers(lo, hi + 1, (n, c, h, wd)).astype(NP[x_dtype])
    w = rng.integers(-128, 128, (m, 1, kh, kw)).astype(np.int8)
    geo = dict(strides=(stride, stride), pads=(pad,) * 4, dilations=(dil, dil), group=c)
    return q, x, w, geo


def _uses_dot(q, ow: int, stride: int) -> bool:
    target = flavour_target(q["flavour"])
    return qdd.lanes(target, select_qisa(target), stride, ow) > 0


@pytest.mark.parametrize("wd", [7, 14, 17, 56, 113])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("flavour", ["vnni512", "vnni256"])
def test_widths_and_strides(wd, stride, flavour):
    """MobileNet-like 3x3 pad 1: full chunks, overlapping and masked tails, row passes
    with rows left over (h = 5); the vnni256 flavour has no vpermb (vpshufb instead)."""
    q, x, w, geo = _case(wd * 7 + stride, 3, 5, wd, 3, stride, 1)
    q["flavour"] = flavour
    assert _uses_dot(q, (wd - 1) // stride + 1, stride)
    check(q, x, w, geo)


@pytest.mark.parametrize(
    ("k", "stride", "pad", "dil", "mg"),
    [(1, 1, 0, 1, 1), (5, 1, 2, 1, 1), (5, 2, 2, 1, 2), (7, 1, 3, 1, 1), ((1, 6), 1, 1, 1, 1),
     (3, 1, 2, 2, 1), (3, 2, 1, 3, 1), (3, 4, 1, 1, 1), (2, 3, 0, 1, 3)],
)  # fmt: skip
def test_kernel_shapes_dilations_multipliers(k, stride, pad, dil, mg):
    q, x, w, geo = _case(17, 2, 11, 37, k, stride, pad, mg=mg, dil=dil)
    check(q, x, w, geo)


@pytest.mark.parametrize(
    ("x_dtype", "y_dtype", "act", "res"),
    [("i8", "i8", "relu", True), ("u8", "u8", "clip", True), ("i8", "f32", "relu", False),
     ("u8", "f32", "none", False), ("i8", "u8", "none", False)],
)  # fmt: skip
def test_dtypes_residual_activations(x_dtype, y_dtype, act, res):
    q, x, w, geo = _case(5, 3, 9, 29, 3, 1, 1, x_dtype, y_dtype, act, res)
    check(q, x, w, geo)


def test_extreme_values_are_exact():
    """|x - zp| = 255 against w = -128 on every tap (zero point 0 and 255)."""
    for zp in (0, 255):
        q, _, _, geo = _case(1, 2, 9, 40, 5, 1, 2, act="none")
        q.update(x_zp=zp, y_dtype="i8", y_zp=0, y_scale=1.0,
                 w_scale=np.full(2, 1e-4, np.float32))  # fmt: skip
        x = np.full((1, 2, 9, 40), 255 - zp, np.uint8)
        w = np.full((2, 1, 5, 5), -128, np.int8)
        check(q, x, w, geo)


def dot_cases():
    return depthwise_cases(3, (1, 2, 3, 4), 3, 9, 80, ["vnni512", "vnni256"])


@given(dot_cases())
@settings(max_examples=15, deadline=None)
def test_dot_kernel_matches_exact_reference(case):
    check(*case)


def _run(q, x, w, geo, out_shape, target) -> np.ndarray:
    module = ir.Module()
    kfn = emit_qconv(module, "k", target=target, x_shape=x.shape, w=w, **geo, **kernel_kwargs(q))
    out = np.full(out_shape, 0x5A, np.uint8)
    Jit(module, target).call([x, out], kfn.scratch_bytes)
    return out


@pytest.mark.parametrize("rows", [1, 2, 8])
def test_rows_per_pass_variants(monkeypatch, rows):
    """Passes of 1, 2 or 8 rows (then halves for the rows left over; the default is
    covered by every other test)."""
    monkeypatch.setattr(qdd, "MAX_ROWS", rows)
    for h in (3, 7, 12):
        check(*_case(h, 2, h, 21, 3, 1, 1, res=True))


def test_threads_are_bitwise_identical(monkeypatch, tmp_path):
    """A built library (a real 2-thread pool; tasks over the planes of 2 images, own
    scratch each; stride-1 depthwise + residual, then stride 2) equals its serial build
    and the interpreter."""
    from nnc.backends.llvm import build, write_artifact
    from nnc.ir import ops_quant as oq
    from nnc.ir.builder import GraphBuilder
    from nnc.ir.interpret import interpret
    from nnc.runtime import load_library

    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    rng = np.random.default_rng(3)
    g = GraphBuilder()
    shape = (2, 20, 19, 37)
    x = g.add_input("x", shape, "u8")

    def dw(v, stride, res=None):
        c = shape[1]
        w = g.constant(rng.integers(-127, 128, (c, 1, 3, 3)).astype(np.int8))
        bias = g.constant(rng.integers(-2000, 2000, c).astype(np.int32))
        extra = dict(r_scale=0.07, r_zp=11) if res is not None else {}
        return g.insert(
            oq.QConvOp(v, w, bias, res, strides=(stride, stride), pads=(1, 1, 1, 1), group=c,
                       x_scale=0.05, x_zp=9, w_scale=rng.uniform(0.001, 0.01, c).astype(
                       np.float32), y_scale=0.1, y_zp=4, out_dtype="u8", activation="relu",
                       **extra)
        )  # fmt: skip

    h = dw(x, 1)
    y = dw(dw(h, 1, res=h), 2)
    module = g.finish([("y", y)])
    xin = rng.integers(0, 256, shape).astype(np.uint8)
    outs = []
    for threads in (1, 2):
        so = write_artifact(build(module, threads=threads), tmp_path / f"l{threads}.so", "so")
        outs.append(load_library(so).run([xin])[0])
    np.testing.assert_array_equal(outs[0], interpret(module, [xin])[0])
    np.testing.assert_array_equal(outs[1], outs[0])


def test_selection():
    """VNNI (512: 16/8/4 lanes, 4.. when avx512vl is off: 16; 256: 8/4) and sdot take the
    dot kernel; vpmaddwd/widen flavours and strides above 4 keep the float kernel."""
    x86 = HOST.triple if HOST.arch == "x86_64" else "x86_64-unknown-linux-gnu"
    ice = Target(x86, "icelake-server", "")
    assert qdd.lanes(ice, ISAS["vnni512"], 2, 112) == 16
    assert qdd.lanes(ice, ISAS["vnni512"], 1, 7) == 8
    assert qdd.lanes(ice, ISAS["vnni512"], 4, 3) == 4
    assert qdd.lanes(ice, ISAS["vnni512"], 5, 112) == 0
    assert qdd.lanes(Target(x86, "icelake-server", "-avx512vl"), ISAS["vnni512"], 1, 7) == 16
    assert qdd.lanes(Target(x86, "alderlake", ""), ISAS["vnni256"], 1, 56) == 8
    assert qdd.lanes(Target(x86, "skylake-avx512", ""), ISAS["madd512"], 1, 64) == 0
    assert qdd.lanes(Target(x86, "haswell", ""), ISAS["madd256"], 1, 64) == 0
    arm = Target("aarch64-unknown-linux-gnu", "cortex-a76", "+neon")
    assert qdd.lanes(arm, ISAS["sdot"], 2, 56) == 4
    assert qdd.lanes(arm, ISAS["widen"], 1, 56) == 0
    assert qdd.rows_per_pass(dict(oh=5, sh=1, kh=3, dh=1)) == min(qdd.MAX_ROWS, 4)
    assert qdd.rows_per_pass(dict(oh=1, sh=1, kh=3, dh=1)) == 1
    assert qdd.rows_per_pass(dict(oh=5, sh=2, kh=1, dh=1)) == 1


@pytest.mark.parametrize(("cpu", "feats"), [("cascadelake", ""), ("alderlake", "")])
def test_compiles_without_vbmi(cpu, feats):
    """No vpermb (Cascade Lake: vpermq + vpshufb) or no AVX-512 at all (Alder Lake:
    VEX vpdpbusd ymm): the dot kernel still compiles to vpdpbusd."""
    x86 = HOST.triple if HOST.arch == "x86_64" else "x86_64-unknown-linux-gnu"
    target = Target(x86, cpu, feats)
    module = ir.Module()
    module.triple = target.triple
    w = np.ones((8, 1, 3, 3), np.int8)
    emit_qconv(module, "k", target=target, x_shape=(1, 8, 9, 20), w=w, w_scale=0.1,
               x_scale=0.1, pads=(1, 1, 1, 1), group=8)  # fmt: skip
    mod = llvm.parse_assembly(str(module))
    tm = target.target_machine()
    optimize_module(mod, tm, 3)
    asm = tm.emit_assembly(mod)
    assert "vpdpbusd" in asm and "vpermb" not in asm


def test_weight_packing_groups_taps_by_dword():
    w2d = np.arange(1, 7, dtype=np.int8).reshape(1, 6)  # kh=2, kw=3, dw=2: offsets 0, 2, 4
    d = dict(kh=2, kw=3, dw=2)
    packed = qdd.pack_weights(w2d, d).reshape(1, 2, 2, 4)
    np.testing.assert_array_equal(packed[0, 0], [[1, 0, 2, 0], [3, 0, 0, 0]])
    np.testing.assert_array_equal(packed[0, 1], [[4, 0, 5, 0], [6, 0, 0, 0]])
