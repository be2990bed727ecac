"""Dynamically quantized layers (``nn.wq_conv`` / ``nn.wq_gemm`` with
``act_quant = "dynamic"``): per run, the float input is quantized to u8 with
DynamicQuantizeLinear's parameters, accumulated against the int8 weights in int32, and
rescaled to float32, exactly as ``nnc/ir/ops_quant.py`` states::

    lo = min(0, min x); hi = max(0, max x); s = f32(hi - lo) / 255 (1 if 0)
    zp = clamp(rint(-lo / s), 0, 255);  x_q = clamp(rint(x / s) + zp, 0, 255)
    acc = sum_k (x_q - zp) * w[n, k]              (int32; conv padding contributes 0)
    y = act(f32(acc) * (s * scale[n]) + bias[n] + residual)

Plain scalar loops (correct, not yet fast: the packed VNNI kernels take compile-time
activation parameters). Args: ``x, w (N, K) i8, [bias], [residual], out, scratch``.
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


def _emit_dynamic_quantize(b, module, x, xq, size):
    """Quantize ``x`` (size floats) into ``xq`` (u8); returns (scale f32, zp i32)."""
    lo_p, hi_p = b.alloca(F32), b.alloca(F32)
    b.store(loops.f32(0.0), lo_p)
    b.store(loops.f32(0.0), hi_p)
    with loops.for_range(b, 0, size, name="mm") as i:
        v = loops.load_at(b, x, i)
        b.store(_fmin(b, b.load(lo_p), v), lo_p)
        b.store(_fmax(b, b.load(hi_p), v), hi_p)
    lo, hi = b.load(lo_p), b.load(hi_p)
    s = b.fdiv(b.fsub(hi, lo), loops.f32(255.0))
    s = b.select(b.fcmp_ordered("==", s, loops.f32(0.0)), loops.f32(1.0), s)
    zpf = _clamp(b, _rint(b, module, b.fdiv(b.fneg(lo), s)), 0.0, 255.0)
    with loops.for_range(b, 0, size, name="q") as i:
        q = b.fadd(_rint(b, module, b.fdiv(loops.load_at(b, x, i), s)), zpf)
        loops.store_at(b, b.trunc(b.fptosi(_clamp(b, q, 0.0, 255.0), I32), I8), xq, i)
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
