"""FFT convolution kernel (``nn.fft_conv``): DFTs as products with constant tables.

Per image, with the padded plane Hp x Wp, Wf = Wp//2 + 1 stored frequencies along the
width and Q = Hp * Wf:

1. pad x into ``xp`` (C, Hp, Wp);
2. row real DFT: ``X[c, h, f] = sum_w xp[c, h, w] e^{-2 pi i f w / Wp}`` (re/im planes);
3. column DFT: ``Z[c, k, f] = sum_h X[c, h, f] e^{-2 pi i k h / Hp}``;
4. per output channel m: ``Y[q] = sum_c Z[c, q] * Wf[m, c, q]`` (complex, vectorized over q);
   inverse column DFT for the OH needed rows only; inverse row DFT (complex-to-real,
   Hermitian weights 1 or 2, 1/(Hp*Wp) folded into the table) for the OW needed columns,
   accumulated straight into the output row; then ``act(. + bias + residual)`` in place.

Threads (``parallel.parallel_for``, per image): steps 1-3 split over input channels,
step 4 over output channels (each with its own Y/U scratch).

The cos/sin tables are internal LLVM constants. Every inner loop runs over a contiguous
dimension (f, q or w) with loop-invariant scalars, so LLVM vectorizes it; none is
register-blocked, so this kernel reaches a fraction of the GEMM micro-kernel's rate
(see ``fft-conv``'s docstring for where it still wins).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.kernels.gemm import align64, scratch_f32
from nnc.backends.llvm.loops import F32, f32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import parallel_for
from nnc.ir.ops_conv_algos import fft_bins

Shape = tuple[int, ...]


def const_table(module: ir.Module, name: str, values: np.ndarray) -> ir.GlobalVariable:
    """An internal constant global ``float name[len(values)]``."""
    flat = [float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)]
    ty = ir.ArrayType(F32, len(flat))
    gv = ir.GlobalVariable(module, ty, name=name)
    gv.initializer = ir.Constant(ty, flat)
    gv.global_constant = True
    gv.linkage = "internal"
    gv.align = 64
    return gv


def _ptr(b: ir.IRBuilder, gv: ir.GlobalVariable) -> ir.Value:
    return b.gep(gv, [i64(0), i64(0)], inbounds=True)


def _zero(b, ptr, count: int) -> None:
    with for_range(b, 0, count, name="z") as i:
        store_at(b, f32(0.0), ptr, i)


def _axpy(b, ptr, index, scalar, src, src_index) -> None:
    """``ptr[index] += scalar * src[src_index]``."""
    v = b.fmul(scalar, load_at(b, src, src_index), flags=("contract",))
    store_at(b, b.fadd(load_at(b, ptr, index), v, flags=("contract",)), ptr, index)


def emit_fft_conv(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    wf_shape: Shape,
    kernel: Shape,
    pads: Shape,
    fft_shape: Shape,
    has_bias: bool = False,
    has_residual: bool = False,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
) -> KernelFn:
    """``nn.fft_conv``: args ``x (N,C,H,W), wf (M,C,2,Q), [bias], [residual], out``."""
    n, c, h, w = x_shape
    mo = wf_shape[0]
    hp, wp = fft_shape
    pt, pl, pb, pr = pads
    wfn = fft_bins(wp)
    q = hp * wfn
    oh, ow = hp - kernel[0] + 1, wp - kernel[1] + 1
    if (h + pt + pb, w + pl + pr) != (hp, wp) or tuple(wf_shape) != (mo, c, 2, q) or oh < 1:
        raise ValueError(f"fft_conv: bad shapes x {x_shape}, wf {wf_shape}, fft {fft_shape}")
    # tables: row DFT (Wp x Wf), column DFT (Hp x Hp, symmetric), inverse row (Wf x OW)
    ang_w = 2 * np.pi * np.outer(np.arange(wp), np.arange(wfn)) / wp
    ang_h = 2 * np.pi * np.outer(np.arange(hp), np.arange(hp)) / hp
    herm = np.full(wfn, 2.0)
    herm[0] = 1.0
    if wp % 2 == 0:
        herm[-1] = 1.0
    ang_i = 2 * np.pi * np.outer(np.arange(wfn), np.arange(ow)) / wp
    scale = herm.reshape(-1, 1) / (hp * wp)
    tabs = {
        "rc": np.cos(ang_w), "rs": -np.sin(ang_w), "hc": np.cos(ang_h), "hs": np.sin(ang_h),
        "ic": scale * np.cos(ang_i), "is": -scale * np.sin(ang_i),
    }  # fmt: skip
    # per-image buffers; Y and U are per output channel (one copy per task)
    sizes = [c * hp * wp, 2 * c * hp * wfn, 2 * c * q, 2 * q * mo, 2 * oh * wfn * mo]
    sizes = [align64(4 * s) for s in sizes]
    offs = np.cumsum([0, *sizes])
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=True)
    gvs = {k: const_table(module, f"{name}.{k}", v) for k, v in tabs.items()}
    x, wts, out = args[0], args[1], args[n_args - 1]
    bias = args[2] if has_bias else None
    res = args[2 + has_bias] if has_residual else None
    xp, xf, zf, yf, uf = (scratch_f32(b, args[-1], int(o)) for o in offs[:5])
    act = (activation, act_alpha, act_beta)
    xi_off, zi_off = c * hp * wfn, c * q

    def forward(b, lo, hi, a):
        """Input channels [lo, hi): pad, row rDFT, column DFT."""
        ximg, xp, xf, zf = a
        t = {k: _ptr(b, gv) for k, gv in gvs.items()}
        with for_range(b, lo, hi, name="fc") as ci:
            plane = gep(b, xp, b.mul(ci, i64(hp * wp)))
            _zero(b, plane, hp * wp)
            with for_range(b, 0, h, name="pi") as i:
                src = gep(b, ximg, b.add(b.mul(ci, i64(h * w)), b.mul(i, i64(w))))
                dst = gep(b, plane, b.add(b.mul(i, i64(wp)), i64(pt * wp + pl)))
                with for_range(b, 0, w, name="pj") as j:
                    store_at(b, load_at(b, src, j), dst, j)
            # row rDFT: xf re plane (C*Hp, Wf), im plane after it
            xre_c = gep(b, xf, b.mul(ci, i64(hp * wfn)))
            _zero(b, xre_c, hp * wfn)
            _zero(b, gep(b, xre_c, xi_off), hp * wfn)
            with for_range(b, 0, hp, name="rr") as r:
                src = gep(b, plane, b.mul(r, i64(wp)))
                dre = gep(b, xre_c, b.mul(r, i64(wfn)))
                dim = gep(b, dre, xi_off)
                with for_range(b, 0, wp, name="rw") as wi:
                    xv = load_at(b, src, wi)
                    rc = gep(b, t["rc"], b.mul(wi, i64(wfn)))
                    rs = gep(b, t["rs"], b.mul(wi, i64(wfn)))
                    with for_range(b, 0, wfn, name="rf") as f:
                        _axpy(b, dre, f, xv, rc, f)
                        _axpy(b, dim, f, xv, rs, f)
            # column DFT: zf re plane (C, Q), im plane after it
            zre_c = gep(b, zf, b.mul(ci, i64(q)))
            _zero(b, zre_c, q)
            _zero(b, gep(b, zre_c, zi_off), q)
            with for_range(b, 0, hp, name="ck") as k:
                zre = gep(b, zre_c, b.mul(k, i64(wfn)))
                zim = gep(b, zre, zi_off)
                with for_range(b, 0, hp, name="ch") as hh:
                    idx = b.add(b.mul(k, i64(hp)), hh)
                    cv, sv = load_at(b, t["hc"], idx), load_at(b, t["hs"], idx)
                    xre = gep(b, xre_c, b.mul(hh, i64(wfn)))
                    xim = gep(b, xre, xi_off)
                    with for_range(b, 0, wfn, name="cf") as f:
                        # (a + ib)(cos - i sin) = a cos + b sin + i (b cos - a sin)
                        _axpy(b, zre, f, cv, xre, f)
                        _axpy(b, zre, f, sv, xim, f)
                        _axpy(b, zim, f, cv, xim, f)
                        _axpy(b, zim, f, b.fneg(sv), xre, f)

    def per_output(b, lo, hi, a):
        """Output channels [lo, hi): channel sum, inverse DFTs, epilogue."""
        wts, zf, yf, uf, oimg = a[:5]
        bias = a[5] if has_bias else None
        rimg = a[5 + has_bias] if has_residual else None
        t = {k: _ptr(b, gv) for k, gv in gvs.items()}
        fl = ("contract",)
        with for_range(b, lo, hi, name="m") as mi:
            yre = gep(b, yf, b.mul(mi, i64(2 * q)))
            yim = gep(b, yre, q)
            _zero(b, yre, 2 * q)
            with for_range(b, 0, c, name="pc2") as ci:
                wre = gep(b, wts, b.mul(b.add(b.mul(mi, i64(c)), ci), i64(2 * q)))
                wim = gep(b, wre, q)
                zre = gep(b, zf, b.mul(ci, i64(q)))
                zim = gep(b, zre, zi_off)
                with for_range(b, 0, q, name="pq") as qq:
                    za, zb = load_at(b, zre, qq), load_at(b, zim, qq)
                    wr, wi = load_at(b, wre, qq), load_at(b, wim, qq)
                    re = b.fsub(b.fmul(za, wr, flags=fl), b.fmul(zb, wi, flags=fl), flags=fl)
                    im = b.fadd(b.fmul(za, wi, flags=fl), b.fmul(zb, wr, flags=fl), flags=fl)
                    store_at(b, b.fadd(load_at(b, yre, qq), re, flags=fl), yre, qq)
                    store_at(b, b.fadd(load_at(b, yim, qq), im, flags=fl), yim, qq)
            # inverse column DFT (e^{+i}) for the OH output rows
            ure = gep(b, uf, b.mul(mi, i64(2 * oh * wfn)))
            uim = gep(b, ure, oh * wfn)
            _zero(b, ure, 2 * oh * wfn)
            with for_range(b, 0, oh, name="ih") as hh:
                ur, ui = gep(b, ure, b.mul(hh, i64(wfn))), gep(b, uim, b.mul(hh, i64(wfn)))
                with for_range(b, 0, hp, name="ik") as k:
                    idx = b.add(b.mul(k, i64(hp)), hh)
                    cv, sv = load_at(b, t["hc"], idx), load_at(b, t["hs"], idx)
                    yr, yi = gep(b, yre, b.mul(k, i64(wfn))), gep(b, yim, b.mul(k, i64(wfn)))
                    with for_range(b, 0, wfn, name="if") as f:
                        # (a + ib)(cos + i sin) = a cos - b sin + i (b cos + a sin)
                        _axpy(b, ur, f, cv, yr, f)
                        _axpy(b, ur, f, b.fneg(sv), yi, f)
                        _axpy(b, ui, f, cv, yi, f)
                        _axpy(b, ui, f, sv, yr, f)
            # inverse row DFT into the output, then the epilogue
            plane = b.mul(mi, i64(oh * ow))
            bv = load_at(b, bias, mi) if bias is not None else None
            with for_range(b, 0, oh, name="oh") as hh:
                off = b.add(plane, b.mul(hh, i64(ow)))
                dst = gep(b, oimg, off)
                _zero(b, dst, ow)
                ur, ui = gep(b, ure, b.mul(hh, i64(wfn))), gep(b, uim, b.mul(hh, i64(wfn)))
                with for_range(b, 0, wfn, name="of") as f:
                    icr = gep(b, t["ic"], b.mul(f, i64(ow)))
                    isr = gep(b, t["is"], b.mul(f, i64(ow)))
                    ua, ub = load_at(b, ur, f), load_at(b, ui, f)
                    with for_range(b, 0, ow, name="ow") as j:
                        _axpy(b, dst, j, ua, icr, j)
                        _axpy(b, dst, j, ub, isr, j)
                rrow = gep(b, rimg, off) if rimg is not None else None
                with for_range(b, 0, ow, name="ep") as j:
                    v = load_at(b, dst, j)
                    if bv is not None:
                        v = b.fadd(v, bv)
                    if rrow is not None:
                        v = b.fadd(v, load_at(b, rrow, j))
                    store_at(b, emit_activation(b, module, v, *act), dst, j)

    fwd_work = c * (hp * wp * wfn * 4 + hp * hp * wfn * 8)
    out_work = mo * (c * q * 8 + oh * hp * wfn * 8 + oh * wfn * ow * 4)
    with for_range(b, 0, n, name="img") as ni:
        ximg = gep(b, x, b.mul(ni, i64(c * h * w)))
        oimg = gep(b, out, b.mul(ni, i64(mo * oh * ow)))
        rimg = gep(b, res, b.mul(ni, i64(mo * oh * ow))) if res is not None else None
        parallel_for(b, c, [ximg, xp, xf, zf], forward, work=fwd_work, name="fft_in")
        caps = [wts, zf, yf, uf, oimg, *[p for p in (bias, rimg) if p is not None]]
        parallel_for(b, mo, caps, per_output, work=out_work, name="fft_out")
    b.ret_void()
    return KernelFn(fn, int(offs[5]))
