"""qconv's pixels-as-rows path (``qconv_pixrows``: pixel-major padded input, tap panel,
channels in the vector lanes, transposed residual and output): bit-exact against the
exact integer reference for the 4-byte dot-product flavours, at 1 and 2 threads, plus its
gating and the register transpose helper."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from llvmlite import ir
from test_kernels_quant import (
    NP,
    RANGE,
    Jit,
    add_qconv,
    assert_equal,
    conv_acc,
    epilogue_ref,
    flavour_target,
    group1_conv_cases,
    run_kernel,
)

from nnc.backends.llvm import loops, parallel
from nnc.backends.llvm.kernels import qconv_pixrows as qpix
from nnc.backends.llvm.kernels.qconv import emit_qconv
from nnc.backends.llvm.kernels.qisa import ISAS


@pytest.fixture
def forced(monkeypatch):
    """Every eligible conv takes the pixel-rows path."""
    monkeypatch.setattr(qpix, "preferred", lambda *a: True)


def make_case(rng, c, m, h, wd, kh, kw, strides, pads, flavour, x_dtype="u8", res=True,
              act="relu", y_dtype="u8", n=1):  # fmt: skip
    oh = (h + pads[0] + pads[2] - kh) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - kw) // strides[1] + 1
    lo, hi = RANGE[x_dtype]
    q = dict(
        x_dtype=x_dtype, y_dtype=y_dtype, x_zp=int(rng.integers(lo, hi + 1)), x_scale=0.02,
        act=act, lo=-0.5, hi=3.0, w_scale=rng.uniform(0.001, 0.003, m).astype(np.float32),
        fbias=None, y_scale=0.3, y_zp=2, bias=rng.integers(-500, 500, m).astype(np.int32),
        res=None, r_dtype=None, r_zp=0, r_scale=0.0, flavour=flavour,
    )  # fmt: skip
    if res:
        q.update(r_dtype="i8", r_zp=-3, r_scale=0.2,
                 res=rng.integers(-128, 128, (n, m, oh, ow)).astype(np.int8))  # fmt: skip
    x = rng.integers(lo, hi + 1, (n, c, h, wd)).astype(NP[x_dtype])
    w = rng.integers(-128, 128, (m, c, kh, kw)).astype(np.int8)
    return q, x, w, dict(strides=strides, pads=pads, dilations=(1, 1), group=1)


def reference(q, x, w, geo):
    acc = conv_acc(x, w, geo["strides"], geo["pads"], geo["dilations"], 1, q["x_zp"])
    if q["bias"] is not None and q["y_dtype"] != "f32":
        acc = acc + q["bias"][None, :, None, None]
    return epilogue_ref(acc, q, 1)


def check(q, x, w, geo):
    ref = reference(q, x, w, geo)
    assert_equal(run_kernel(emit_qconv, q, x, ref.shape, x_shape=x.shape, w=w, **geo), ref)


@pytest.mark.parametrize(
    ("c", "m", "h", "k", "stride", "pad", "x_dtype"),
    [
        (16, 20, 7, 1, 1, 0, "u8"),  # 1x1 direct (A is XN), M not a multiple of 16
        (12, 33, 9, 1, 2, 0, "i8"),  # 1x1 stride 2, C padded to 4
        (8, 40, 7, 3, 1, 1, "i8"),  # 3x3 pad 1, 49 pixels (not a multiple of the tile)
        (20, 17, 14, 3, 2, 1, "u8"),  # 3x3 stride 2
        (5, 64, 6, 3, 1, 0, "u8"),  # no pads, C=5, several channel tiles
        (16, 24, 6, 3, 1, (1, 0, 2, 0), "i8"),  # top/bottom pads only: one input transpose
    ],
)
def test_pixrows_matches_exact_reference(forced, c, m, h, k, stride, pad, x_dtype):
    rng = np.random.default_rng(c * m + h)
    pads = pad if isinstance(pad, tuple) else (pad,) * 4
    case = make_case(rng, c, m, h, h, k, k, (stride, stride), pads, "vnni512", x_dtype)
    check(*case)


def test_pixrows_vnni256_and_float_output(forced):
    rng = np.random.default_rng(3)
    q, x, w, geo = make_case(rng, 9, 23, 5, 6, 3, 3, (1, 1), (1, 0, 1, 2), "vnni256", "i8",
                             res=False, y_dtype="f32", n=2)  # fmt: skip
    q["fbias"] = rng.standard_normal(23).astype(np.float32)
    check(q, x, w, geo)


def pixrow_cases():
    return group1_conv_cases([(1, 1), (3, 3), (1, 3), (2, 2)], 24, 40, 1, 9, 19)


@given(pixrow_cases())
@settings(max_examples=20, deadline=None)
def test_pixrows_property(case):
    saved = qpix.preferred
    qpix.preferred = lambda *a: True
    try:
        check(*case)
    finally:
        qpix.preferred = saved


def test_pixrows_threads_bitwise_identical(forced, monkeypatch, tmp_path):
    """A built model (1x1 conv, then 3x3 conv + residual + relu on 7x7) gives the same bits
    at 1 and 2 threads with every loop dispatched, equal to the interpreter's."""
    from nnc.backends.llvm import build, write_artifact
    from nnc.ir.builder import GraphBuilder
    from nnc.ir.interpret import interpret
    from nnc.runtime import load_library

    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    rng = np.random.default_rng(11)
    g = GraphBuilder()
    x = g.add_input("x", (1, 24, 7, 7), "u8")

    h = add_qconv(g, rng, x, 24, 150, 1)
    y = add_qconv(g, rng, h, 150, 150, 3, res=h)
    module = g.finish([("y", y)])
    xin = rng.integers(0, 256, (1, 24, 7, 7)).astype(np.uint8)
    outs = []
    for threads in (1, 2):
        so = write_artifact(build(module, threads=threads), tmp_path / f"l{threads}.so", "so")
        outs.append(load_library(so).run([xin])[0])
    assert_equal(outs[0], interpret(module, [xin])[0])
    assert_equal(outs[1], outs[0])


def test_gating():
    def d(oh, c=512, m=512, k=3):
        return dict(oh=oh, ow=oh, c=c, m=m, kh=k, kw=k)

    assert qpix.eligible(ISAS["vnni512"], d(7), 1) and qpix.eligible(ISAS["sdot"], d(7), 1)
    assert not qpix.eligible(ISAS["madd512"], d(7), 1)
    assert not qpix.eligible(ISAS["vnni512"], d(7), 2)
    v512, v256 = ISAS["vnni512"], ISAS["vnni256"]
    assert qpix.preferred(d(7), v512) and qpix.preferred(d(28, c=128), v512)
    assert not qpix.preferred(d(28, c=512), v512)  # a 3.6 MB panel
    assert not qpix.preferred(d(56), v512) and not qpix.preferred(d(7, c=3), v512)
    assert qpix.preferred(d(7, k=1), v512) and not qpix.preferred(d(56, c=24, m=144, k=1), v512)
    assert qpix.preferred(d(14), v256) and not qpix.preferred(d(28, c=64), v256)
    assert qpix.preferred(d(7, k=1), v256) and not qpix.preferred(d(14, k=1), v256)
    t49, t200 = qpix.tile_isa(v512, 49, 512), qpix.tile_isa(v512, 200, 256)
    assert (t49.mr, t49.nrv, t200.mr, t200.nrv) == (7, 3, 8, 2)  # least padding
    small = qpix.tile_isa(v256, 49, 512)
    assert small.mr * small.nrv <= 12 and small.width == 8


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (3, 17), (16, 16), (21, 7), (40, 33)])
def test_transpose_helper(rows, cols):
    """``emit_transpose`` on bytes with row strides wider than the rows."""
    target = flavour_target("vnni512")
    module = ir.Module()
    fn, b, args = loops.new_function(module, "k", 2, scratch=False)
    src, dst = (b.bitcast(a, loops.I8_PTR) for a in args)
    qpix.emit_transpose(b, src, cols + 3, dst, rows + 5, rows, cols, loops.I8, flip=True)
    b.ret_void()
    rng = np.random.default_rng(rows * cols)
    x = rng.integers(0, 256, (rows, cols + 3)).astype(np.uint8)
    out = np.zeros((cols, rows + 5), np.uint8)
    Jit(module, target).call([x, out], 0)
    assert_equal(out[:, :rows], x[:, :cols].T ^ 0x80)
    assert not out[:, rows:].any()


def test_pixrows_sdot_under_qemu(forced, monkeypatch, tmp_path):
    """The AArch64 ``sdot`` flavour (s8 domain: u8 inputs flipped) on 3x3 and 1x1 convs,
    cross-compiled and run under qemu (test_aarch64_quant's driver)."""
    import test_aarch64_quant as ta

    rng = np.random.default_rng(8)
    cases = []
    for k, pads, x_dtype in ((3, (1, 1, 1, 1), "u8"), (1, (0, 0, 0, 0), "i8")):
        q, x, w, geo = make_case(rng, 20, 19, 6, 5, k, k, (1, 1), pads, "", x_dtype)
        cases.append((emit_qconv, dict(x_shape=x.shape, w=w, **geo), q, x, reference(q, x, w, geo)))
    monkeypatch.setattr(ta, "_cases", lambda: cases)
    exe, files, expected, asm = ta._build(tmp_path, "cortex-a76")
    assert "sdot" in asm
    proc = ta._qemu("max", exe, files)
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stdout + proc.stderr
    for path, ref in expected:
        assert_equal(np.frombuffer(path.read_bytes(), dtype=ref.dtype).reshape(ref.shape), ref)


def test_pixrows_dilation(forced):
    rng = np.random.default_rng(5)
    q, x, w, geo = make_case(rng, 16, 20, 9, 9, 3, 3, (1, 1), (2,) * 4, "vnni512", res=False)
    geo["dilations"] = (2, 1)
    check(q, x, w, geo)
