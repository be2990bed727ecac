"""Dynamically quantized layers (``nn.wq_conv`` / ``nn.wq_gemm`` with
``act_quant = "dynamic"``): per run, the float input is quantized to u8 with
DynamicQuantizeLinear's parameters, accumulated against the int8 weights in int32, and
rescaled to float32, exactly as ``nnc/ir/ops_quant.py`` states::

    lo = min(0, min x); hi = max(0, max x); s = f32(hi - lo) / 255 (1 if 0)
    zp = clamp(rint(-lo / s), 0, 255);  x_q = clamp(rint(x / s) + zp, 0, 255)
    acc = sum_k (x_q - zp) * w[n, k]              (int32; conv padding contributes 0)
    y = act(f32(acc) * (s * scale[n]) + bias[n] + residual)

This module holds the vectorized run-time quantization (``emit_qparams``,
``emit_quantize_rows``) and the fallback layer ``emit_dyn_qlayer`` (scalar int32 loops,
used for non-constant weights and depthwise convs; args ``x, w (N, K) i8, [bias],
[residual], out, scratch``). Constant-weight layers run on the int8 micro-kernels of
``qgemm.py`` instead (``dyn_qgemm.py``).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.loops import F32, i64

I8, I32 = ir.IntType(8), ir.IntType(32)


def _rint(b, module, v):
    return b.call(loops.intrinsic(module, "llvm.rint.f32", F32, [F32]), [v])


def _fmin(b, x, y):
    return b.select(b.fcmp_ordered("<", x, y), x, y)


def _fmax(b, x, y):
    return b.select(b.fcmp_ordered(">", x, y), x, y)


def _in_range(b, v, n: int):
    """``0 <= v < n`` for an i64 value."""
    return b.and_(b.icmp_signed(">=", v, i64(0)), b.icmp_signed("<", v, i64(n)))


def _clamp(b, v, lo: float, hi: float):
    return _fmin(b, _fmax(b, v, loops.f32(lo)), loops.f32(hi))


VW = 16  # lanes of the explicit vectors below (LLVM legalizes to the target's width)
V16F = ir.VectorType(F32, VW)


def _vsel_min(b, x, y):
    return b.select(b.fcmp_ordered("<", x, y), x, y)


def _vsel_max(b, x, y):
    return b.select(b.fcmp_ordered(">", x, y), x, y)


def _vconst(value: float) -> ir.Constant:
    return ir.Constant(V16F, [float(value)] * VW)


def _vrint(b, module, v):
    return b.call(loops.intrinsic(module, f"llvm.rint.v{VW}f32", V16F, [V16F]), [v])


def emit_qparams(b, module, x, size: int):
    """DynamicQuantizeLinear's ``(scale f32, zero point as f32)`` of ``x[:size]``: a
    vectorized min/max (``VW`` lanes, then a lane reduction and a scalar tail), then
    ``s = f32(hi - lo) / 255`` (1 if 0), ``zp = clamp(rint(-lo / s), 0, 255)``."""
    nvec, tail = divmod(size, VW)
    lo, hi = loops.f32(0.0), loops.f32(0.0)
    if nvec:
        lo_p, hi_p = b.alloca(V16F), b.alloca(V16F)
        b.store(_vconst(0.0), lo_p)
        b.store(_vconst(0.0), hi_p)
        with loops.for_range(b, 0, nvec, name="mm") as i:
            v = b.load(b.bitcast(loops.gep(b, x, b.mul(i, i64(VW))), V16F.as_pointer()), align=4)
            b.store(_vsel_min(b, b.load(lo_p), v), lo_p)
            b.store(_vsel_max(b, b.load(hi_p), v), hi_p)
        lov, hiv = b.load(lo_p), b.load(hi_p)
        for lane in range(VW):
            idx = ir.Constant(I32, lane)
            lo = _fmin(b, lo, b.extract_element(lov, idx))
            hi = _fmax(b, hi, b.extract_element(hiv, idx))
    for j in range(nvec * VW, nvec * VW + tail):
        v = loops.load_at(b, x, j)
        lo, hi = _fmin(b, lo, v), _fmax(b, hi, v)
    s = b.fdiv(b.fsub(hi, lo), loops.f32(255.0))
    s = b.select(b.fcmp_ordered("==", s, loops.f32(0.0)), loops.f32(1.0), s)
    zpf = _clamp(b, _rint(b, module, b.fdiv(b.fneg(lo), s)), 0.0, 255.0)
    return s, zpf


def emit_quantize_rows(b, module, x, s, zpf, rows: int, k: int, dst, kp: int, flip=False):
    """``dst[r*kp + j] = clamp(rint(x[r*k + j] / s) + zp, 0, 255)`` (u8, xor 0x80 when
    ``flip``) for ``j < k``, 0 for ``k <= j < kp``; vectorized along rows."""
    sv = loops_splat(b, s)
    zv = loops_splat(b, zpf)
    nvec = k // VW
    v8 = ir.VectorType(I8, VW)
    flipv = ir.Constant(v8, [0x80] * VW)

    def q_vec(v):
        q = _vclamp(b, b.fadd(_vrint(b, module, b.fdiv(v, sv)), zv))
        q8 = b.trunc(b.fptosi(q, ir.VectorType(I32, VW)), v8)
        return b.xor(q8, flipv) if flip else q8

    def q_one(v):
        q = _clamp(b, b.fadd(_rint(b, module, b.fdiv(v, s)), zpf), 0.0, 255.0)
        q8 = b.trunc(b.fptosi(q, I32), I8)
        return b.xor(q8, ir.Constant(I8, 0x80)) if flip else q8

    with loops.for_range(b, 0, rows, name="qr") as r:
        src = loops.gep(b, x, b.mul(r, i64(k)))
        out = loops.gep(b, dst, b.mul(r, i64(kp)))
        if nvec:
            with loops.for_range(b, 0, nvec, name="qv") as i:
                off = b.mul(i, i64(VW))
                v = b.load(b.bitcast(loops.gep(b, src, off), V16F.as_pointer()), align=4)
                b.store(q_vec(v), b.bitcast(loops.gep(b, out, off), v8.as_pointer()), align=1)
        if k % VW:
            with loops.for_range(b, nvec * VW, k, name="qt") as j:
                loops.store_at(b, q_one(loops.load_at(b, src, j)), out, j)
        for j in range(k, kp):
            loops.store_at(b, ir.Constant(I8, 0), out, j)


def loops_splat(b, v):
    """``v`` (f32) in every lane of ``<VW x float>``."""
    one = b.insert_element(ir.Constant(V16F, ir.Undefined), v, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(V16F, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, VW), [0] * VW))  # fmt: skip


def _vclamp(b, v):
    lo, hi = _vconst(0.0), _vconst(255.0)
    v = b.select(b.fcmp_ordered("<", v, lo), lo, v)
    return b.select(b.fcmp_ordered(">", v, hi), hi, v)


def _emit_dynamic_quantize(b, module, x, xq, size):
    """Quantize ``x`` (size floats) into ``xq`` (u8); returns (scale f32, zp i32)."""
    s, zpf = emit_qparams(b, module, x, size)
    emit_quantize_rows(b, module, x, s, zpf, 1, size, xq, size)
    return s, b.fptosi(zpf, I32)


def emit_dyn_qlayer(
    module: ir.Module,
    name: str,
    *,
    kind: str,
    x_shape,
    w_shape,
    scale,
    has_bias: bool,
    has_residual: bool,
    activation: str,
    act_alpha: float,
    act_beta: float,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    group: int = 1,
) -> KernelFn:
    """Dynamic int8 conv / gemm (see module docstring)."""
    size = math.prod(x_shape)
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=True)
    x, out, scratch = args[0], args[n_args - 1], args[-1]
    w = b.bitcast(args[1], I8.as_pointer())
    bias = args[2] if has_bias else None
    res = args[2 + has_bias] if has_residual else None
    xq = scratch
    s, zp = _emit_dynamic_quantize(b, module, x, xq, size)
    ws = np.asarray(scale, np.float32).reshape(-1)
    tab_ty = ir.ArrayType(F32, len(ws))
    tab = ir.GlobalVariable(module, tab_ty, name=f"{name}.wscale")
    tab.global_constant, tab.linkage = True, "internal"
    tab.initializer = ir.Constant(tab_ty, [ir.Constant(F32, float(v)) for v in ws])

    def finish(acc, ch, out_idx):
        ms = b.fmul(s, b.load(b.gep(tab, [i64(0), ch], inbounds=True)))
        y = b.fmul(b.sitofp(acc, F32), ms)
        if bias is not None:
            y = b.fadd(y, loops.load_at(b, bias, ch))
        if res is not None:
            y = b.fadd(y, loops.load_at(b, res, out_idx))
        loops.store_at(b, emit_activation(b, module, y, activation, act_alpha, act_beta), out,
                       out_idx)  # fmt: skip

    acc_p = b.alloca(I32)
    if kind == "gemm":
        n, k = int(w_shape[0]), int(math.prod(w_shape[1:]))
        m = size // k
        with loops.for_range(b, 0, m, name="r") as r, loops.for_range(b, 0, n, name="c") as c:
            b.store(ir.Constant(I32, 0), acc_p)
            xrow, wrow = b.mul(r, i64(k)), b.mul(c, i64(k))
            with loops.for_range(b, 0, k, name="k") as kk:
                xv = b.sub(b.zext(loops.load_at(b, xq, b.add(xrow, kk)), I32), zp)
                wv = b.sext(loops.load_at(b, w, b.add(wrow, kk)), I32)
                b.store(b.add(b.load(acc_p), b.mul(xv, wv)), acc_p)
            finish(b.load(acc_p), c, b.add(b.mul(r, i64(n)), c))
    else:
        nb, cin, h, wd = x_shape
        mo, cg, kh, kw = w_shape
        t, left = pads[0], pads[1]
        oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
        ow = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
        mg = mo // group
        with loops.for_range(b, 0, nb, name="n") as ni, loops.for_range(b, 0, mo, name="m") as mi:
            g = b.udiv(mi, i64(mg))
            with (
                loops.for_range(b, 0, oh, name="oy") as oy,
                loops.for_range(b, 0, ow, name="ox") as ox,
            ):  # noqa: E501
                b.store(ir.Constant(I32, 0), acc_p)
                for u in range(kh):
                    for v in range(kw):
                        yy = b.add(b.mul(oy, i64(strides[0])), i64(u * dilations[0] - t))
                        xx = b.add(b.mul(ox, i64(strides[1])), i64(v * dilations[1] - left))
                        inside = b.and_(_in_range(b, yy, h), _in_range(b, xx, wd))
                        with b.if_then(inside):
                            with loops.for_range(b, 0, cg, name="ci") as ci:
                                ch = b.add(b.mul(g, i64(cg)), ci)
                                plane = b.add(b.mul(ni, i64(cin)), ch)
                                xi = b.add(b.mul(b.add(b.mul(plane, i64(h)), yy), i64(wd)), xx)
                                xv = b.sub(b.zext(loops.load_at(b, xq, xi), I32), zp)
                                wi = b.add(b.mul(b.add(b.mul(mi, i64(cg)), ci), i64(kh * kw)),
                                           i64(u * kw + v))  # fmt: skip
                                wv = b.sext(loops.load_at(b, w, wi), I32)
                                b.store(b.add(b.load(acc_p), b.mul(xv, wv)), acc_p)
                oplane = b.add(b.mul(ni, i64(mo)), mi)
                out_idx = b.add(b.mul(b.add(b.mul(oplane, i64(oh)), oy), i64(ow)), ox)
                finish(b.load(acc_p), mi, out_idx)
    b.ret_void()
    return KernelFn(fn, (size + 63) // 64 * 64)
