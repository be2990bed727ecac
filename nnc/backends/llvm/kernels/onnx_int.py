"""ONNX integer ops of imported quantized models, as exact scalar loops (correct, not yet
fast): ``nn.dynamic_quantize`` (DynamicQuantizeLinear), ``nn.matmul_integer``,
``nn.conv_integer`` (int32 results) and ``nn.int_to_float`` (Cast to float32). Semantics:
``nnc/ir/ops_quant.py``. Zero points are run-time buffers: scalars, or per output
channel (conv ``w_zp``) / per column (matmul ``b_zp``).
"""

from __future__ import annotations

import math

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.dyn_quant import _emit_dynamic_quantize, _in_range
from nnc.backends.llvm.loops import F32, i64

I8, I32 = ir.IntType(8), ir.IntType(32)
_TYPES = {"i8": I8, "u8": I8, "i32": I32}


def _load(b, ptr, idx, dtype: str) -> ir.Value:
    v = loops.load_at(b, ptr, idx)
    if dtype == "i32":
        return v
    return b.zext(v, I32) if dtype == "u8" else b.sext(v, I32)


def _cast(b, arg, dtype: str):
    return b.bitcast(arg, _TYPES[dtype].as_pointer())


def emit_dynamic_quantize(module: ir.Module, name: str, *, shape) -> KernelFn:
    """Args ``x, y (u8), scale (f32 scalar), zp (u8 scalar)``."""
    fn, b, (x, y, s_out, zp_out) = loops.new_function(module, name, 4)
    s, zp = _emit_dynamic_quantize(b, module, x, _cast(b, y, "u8"), math.prod(shape))
    loops.store_at(b, s, s_out, 0)
    loops.store_at(b, b.trunc(zp, I8), _cast(b, zp_out, "u8"), 0)
    b.ret_void()
    return KernelFn(fn)


def emit_int_to_float(module: ir.Module, name: str, *, shape, dtype: str) -> KernelFn:
    """Args ``x (i32/i8/u8), y (f32)``: exact conversion, round to nearest even."""
    fn, b, (x, y) = loops.new_function(module, name, 2)
    src = _cast(b, x, dtype)
    with loops.for_range(b, 0, math.prod(shape)) as i:
        loops.store_at(b, b.sitofp(_load(b, src, i, dtype), F32), y, i)
    b.ret_void()
    return KernelFn(fn)


def emit_matmul_integer(
    module: ir.Module, name: str, *, a_shape, b_shape, a_dtype, b_dtype, a_zp, b_zp
) -> KernelFn:
    """``(a - a_zp) @ (b - b_zp)``, a ``(..., K)``, b ``(K, N)``; args ``a, b, [a_zp],
    [b_zp], y (i32)``. ``a_zp``/``b_zp``: None (absent) or the zero point's size."""
    k, n = b_shape
    rows = math.prod(a_shape[:-1])
    n_args = 3 + (a_zp is not None) + (b_zp is not None)
    fn, b, args = loops.new_function(module, name, n_args)
    pa, pb, out = _cast(b, args[0], a_dtype), _cast(b, args[1], b_dtype), _cast(b, args[-1], "i32")
    zero = ir.Constant(I32, 0)
    za = _load(b, _cast(b, args[2], a_dtype), 0, a_dtype) if a_zp is not None else zero
    zb_ptr = _cast(b, args[2 + (a_zp is not None)], b_dtype) if b_zp is not None else None
    acc_p = b.alloca(I32)
    with loops.for_range(b, 0, rows, name="r") as r, loops.for_range(b, 0, n, name="c") as c:
        zb = zero if zb_ptr is None else _load(b, zb_ptr, c if b_zp > 1 else i64(0), b_dtype)
        b.store(zero, acc_p)
        with loops.for_range(b, 0, k, name="k") as kk:
            av = b.sub(_load(b, pa, b.add(b.mul(r, i64(k)), kk), a_dtype), za)
            bv = b.sub(_load(b, pb, b.add(b.mul(kk, i64(n)), c), b_dtype), zb)
            b.store(b.add(b.load(acc_p), b.mul(av, bv)), acc_p)
        loops.store_at(b, b.load(acc_p), out, b.add(b.mul(r, i64(n)), c))
    b.ret_void()
    return KernelFn(fn)


def emit_conv_integer(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    w_shape,
    x_dtype,
    w_dtype,
    x_zp,
    w_zp,
    strides,
    pads,
    dilations,
    group,
) -> KernelFn:
    """``conv(x - x_zp, w - w_zp)`` in int32 (padding contributes 0); args ``x, w,
    [x_zp], [w_zp], y``."""
    nb, cin, h, wd = x_shape
    mo, cg, kh, kw = w_shape
    oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    n_args = 3 + (x_zp is not None) + (w_zp is not None)
    fn, b, args = loops.new_function(module, name, n_args)
    px, pw, out = _cast(b, args[0], x_dtype), _cast(b, args[1], w_dtype), _cast(b, args[-1], "i32")
    zero = ir.Constant(I32, 0)
    zx = _load(b, _cast(b, args[2], x_dtype), 0, x_dtype) if x_zp is not None else zero
    zw_ptr = _cast(b, args[2 + (x_zp is not None)], w_dtype) if w_zp is not None else None
    acc_p = b.alloca(I32)
    mg = mo // group
    with loops.for_range(b, 0, nb, name="n") as ni, loops.for_range(b, 0, mo, name="m") as mi:
        g = b.udiv(mi, i64(mg))
        zw = zero if zw_ptr is None else _load(b, zw_ptr, mi if w_zp > 1 else i64(0), w_dtype)
        with loops.for_range(b, 0, oh, name="oy") as oy, loops.for_range(b, 0, ow) as ox:
            b.store(zero, acc_p)
            for u in range(kh):
                for v in range(kw):
                    yy = b.add(b.mul(oy, i64(strides[0])), i64(u * dilations[0] - pads[0]))
                    xx = b.add(b.mul(ox, i64(strides[1])), i64(v * dilations[1] - pads[1]))
                    with b.if_then(b.and_(_in_range(b, yy, h), _in_range(b, xx, wd))):
                        with loops.for_range(b, 0, cg, name="ci") as ci:
                            plane = b.add(b.mul(ni, i64(cin)), b.add(b.mul(g, i64(cg)), ci))
                            xi = b.add(b.mul(b.add(b.mul(plane, i64(h)), yy), i64(wd)), xx)
                            wrow = b.mul(b.add(b.mul(mi, i64(cg)), ci), i64(kh * kw))
                            wi = b.add(wrow, i64(u * kw + v))
                            xv = b.sub(_load(b, px, xi, x_dtype), zx)
                            wv = b.sub(_load(b, pw, wi, w_dtype), zw)
                            b.store(b.add(b.load(acc_p), b.mul(xv, wv)), acc_p)
            oplane = b.add(b.mul(ni, i64(mo)), mi)
            loops.store_at(
                b, b.load(acc_p), out, b.add(b.mul(b.add(b.mul(oplane, i64(oh)), oy), i64(ow)), ox)
            )
    b.ret_void()
    return KernelFn(fn)
