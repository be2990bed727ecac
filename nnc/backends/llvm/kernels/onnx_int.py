"""ONNX integer ops of imported quantized models: ``nn.dynamic_quantize``
(DynamicQuantizeLinear, the vectorized min/max + quantize of ``dyn_quant.py``),
``nn.matmul_integer``, ``nn.conv_integer`` (exact int32 results) and ``nn.int_to_float``
(Cast to float32). Semantics: ``nnc/ir/ops_quant.py``. Zero points are run-time buffers:
scalars, or per output channel (conv ``w_zp``) / per column (matmul ``b_zp``).

MatMulInteger and ConvInteger accumulate into the int32 output with the contiguous
dimension innermost (matmul: output columns; conv: output pixels of a row, the valid
range of each tap computed at compile time, so there are no bounds checks): loops LLVM
vectorizes. (They keep int32 outputs, which the int8 micro-kernels of ``qgemm.py`` do not
produce; the dequantizing epilogue needs compile-time zero points.)
"""

from __future__ import annotations

import math

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.dyn_quant import _emit_dynamic_quantize
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
    with loops.for_range(b, 0, rows, name="r") as r:
        orow = loops.gep(b, out, b.mul(r, i64(n)))
        with loops.for_range(b, 0, n, name="z") as c:
            loops.store_at(b, zero, orow, c)
        with loops.for_range(b, 0, k, name="k") as kk:
            av = b.sub(_load(b, pa, b.add(b.mul(r, i64(k)), kk), a_dtype), za)
            brow = loops.gep(b, pb, b.mul(kk, i64(n)))
            with loops.for_range(b, 0, n, name="c") as c:
                bv = _load(b, brow, c, b_dtype)
                if zb_ptr is not None:
                    bv = b.sub(bv, _load(b, zb_ptr, c if b_zp > 1 else i64(0), b_dtype))
                acc = b.add(loops.load_at(b, orow, c), b.mul(av, bv))
                loops.store_at(b, acc, orow, c)
    b.ret_void()
    return KernelFn(fn)


def _tap_range(out_size: int, stride: int, offset: int, in_size: int) -> tuple[int, int]:
    """Output positions ``o`` with ``0 <= o*stride + offset < in_size`` (as [lo, hi))."""
    lo = -(offset // stride) if offset < 0 else 0  # ceil(-offset / stride)
    hi = min(out_size, (in_size - 1 - offset) // stride + 1) if in_size - 1 - offset >= 0 else 0
    return lo, max(lo, hi)


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
    mg = mo // group
    with loops.for_range(b, 0, nb, name="n") as ni, loops.for_range(b, 0, mo, name="m") as mi:
        g = b.udiv(mi, i64(mg))
        zw = zero if zw_ptr is None else _load(b, zw_ptr, mi if w_zp > 1 else i64(0), w_dtype)
        oplane = loops.gep(b, out, b.mul(b.add(b.mul(ni, i64(mo)), mi), i64(oh * ow)))
        with loops.for_range(b, 0, oh * ow, name="z") as i:
            loops.store_at(b, zero, oplane, i)
        with loops.for_range(b, 0, cg, name="ci") as ci:
            plane = b.add(b.mul(ni, i64(cin)), b.add(b.mul(g, i64(cg)), ci))
            xplane = loops.gep(b, px, b.mul(plane, i64(h * wd)))
            wrow = b.mul(b.add(b.mul(mi, i64(cg)), ci), i64(kh * kw))
            for u in range(kh):
                oy0, oy1 = _tap_range(oh, strides[0], u * dilations[0] - pads[0], h)
                for v in range(kw):
                    ox0, ox1 = _tap_range(ow, strides[1], v * dilations[1] - pads[1], wd)
                    if oy0 >= oy1 or ox0 >= ox1:
                        continue
                    wv = b.sub(_load(b, pw, b.add(wrow, i64(u * kw + v)), w_dtype), zw)
                    with loops.for_range(b, oy0, oy1, name="oy") as oy:
                        yy = b.add(b.mul(oy, i64(strides[0])), i64(u * dilations[0] - pads[0]))
                        xrow = loops.gep(b, xplane, b.mul(yy, i64(wd)))
                        orow = loops.gep(b, oplane, b.mul(oy, i64(ow)))
                        with loops.for_range(b, ox0, ox1, name="ox") as ox:
                            xx = b.add(b.mul(ox, i64(strides[1])), i64(v * dilations[1] - pads[1]))
                            xv = b.sub(_load(b, xrow, xx, x_dtype), zx)
                            acc = b.add(loops.load_at(b, orow, ox), b.mul(xv, wv))
                            loops.store_at(b, acc, orow, ox)
    b.ret_void()
    return KernelFn(fn)
