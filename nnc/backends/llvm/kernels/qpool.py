"""Max pooling on i8/u8 tensors (quantized models): ``out = max over the window's in-bounds
elements``, exactly the float max pool on the dequantized values, since per-tensor
dequantization is monotone (``fold-qdq`` moves max pools onto the integers). Padding
never wins (it is -inf in the float op); a window with no in-bounds element gives qmin.
Args: ``x, out`` (passed as ``float*``, bitcast to i8). Also the integer global average
pool (``nn.qglobal_avg_pool``, ``emit_qglobal_avg_pool``).

Code shape (as ``pool.py``): per axis, border outputs (some taps out of bounds) are
emitted one by one with their static tap lists; the interior is a runtime loop with the
taps unrolled and no bounds checks, so the code size does not grow with the plane.
Both kernels run their planes on the thread pool when big enough (one plane's code
never depends on the task it falls in).
"""

from __future__ import annotations

import math

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.pool import Axis, pool_out_size
from nnc.backends.llvm.kernels.requant import Epilogue, emit_epilogue
from nnc.backends.llvm.loops import F32, I32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import parallel_for
from nnc.ir import ops_quant as oq

I8 = ir.IntType(8)


def _axis(size: int, k: int, s: int, pb: int, pe: int, d: int, ceil_mode: bool) -> Axis:
    return Axis(size, k, s, pb, pe, d, pool_out_size(size, k, s, pb, pe, d, ceil_mode))


def emit_qmax_pool2d(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    kernel,
    strides,
    pads,
    dilations,
    ceil_mode: bool,
    dtype: str,
) -> KernelFn:
    """Integer NCHW max pool (see module docstring); ``pads = (top, left, bottom, right)``."""
    n, c, h, w = x_shape
    hax = _axis(h, kernel[0], strides[0], pads[0], pads[2], dilations[0], bool(ceil_mode))
    wax = _axis(w, kernel[1], strides[1], pads[1], pads[3], dilations[1], bool(ceil_mode))
    fn, b, (x, y) = loops.new_function(module, name, 2)
    signed = dtype == "i8"
    qmin = ir.Constant(I8, -128 if signed else 0)
    pred = "llvm.smax.i8" if signed else "llvm.umax.i8"
    vmax = loops.intrinsic(module, pred, I8, [I8, I8])

    def planes(b, p0, p1, args):  # planes [p0, p1) (parallel_for body)
        src, out = b.bitcast(args[0], I8.as_pointer()), b.bitcast(args[1], I8.as_pointer())

        def window(xin, ih0, khs, iw0, kws):
            best = qmin
            for kh in khs:
                row = gep(b, xin, b.mul(b.add(ih0, i64(kh * hax.d)), i64(w)))
                for kw in kws:
                    best = b.call(vmax, [best, load_at(b, row, b.add(iw0, i64(kw * wax.d)))])
            return best

        def out_row(xin, yout, oh, khs):
            ih0 = b.sub(b.mul(oh, i64(hax.s)), i64(hax.pb))
            yrow = gep(b, yout, b.mul(oh, i64(wax.out)))
            lo, hi = wax.interior()
            for ow in [*range(lo), *range(hi, wax.out)]:
                iw0 = i64(ow * wax.s - wax.pb)
                store_at(b, window(xin, ih0, khs, iw0, wax.taps(ow)), yrow, ow)
            if hi > lo:
                with for_range(b, lo, hi, name="ow") as ow:
                    iw0 = b.sub(b.mul(ow, i64(wax.s)), i64(wax.pb))
                    store_at(b, window(xin, ih0, khs, iw0, range(wax.k)), yrow, ow)

        lo, hi = hax.interior()
        with for_range(b, p0, p1, name="nc") as plane:
            xin = gep(b, src, b.mul(plane, i64(h * w)))
            yout = gep(b, out, b.mul(plane, i64(hax.out * wax.out)))
            for oh in [*range(lo), *range(hi, hax.out)]:
                out_row(xin, yout, i64(oh), hax.taps(oh))
            if hi > lo:
                with for_range(b, lo, hi, name="oh") as oh:
                    out_row(xin, yout, oh, range(hax.k))

    work = n * c * hax.out * wax.out * kernel[0] * kernel[1]
    parallel_for(b, n * c, [x, y], planes, work=work)
    b.ret_void()
    return KernelFn(fn)


def emit_qglobal_avg_pool(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    x_dtype: str,
    x_scale: float,
    x_zp: int,
    y_scale: float,
    y_zp: int,
    dtype: str,
) -> KernelFn:
    """``nn.qglobal_avg_pool`` (contract in ``nnc/ir/ops_quant.py``): per plane an exact
    int32 sum of ``x - x_zp`` (a vectorizable reduction), then the requant epilogue with
    ``qavg_multiplier``. Args ``x, out`` (i8/u8)."""
    n, c = x_shape[:2]
    count = math.prod(x_shape[2:])
    lo, hi = oq.qrange(dtype)
    epi = Epilogue(dtype, int(y_zp), lo, hi)
    mult = ir.Constant(F32, float(oq.qavg_multiplier(x_scale, y_scale, count)))
    fn, b, (x, y) = loops.new_function(module, name, 2)

    def planes(b, p0, p1, args):  # planes [p0, p1) (parallel_for body)
        ext = b.sext if x_dtype == "i8" else b.zext
        src, out = b.bitcast(args[0], I8.as_pointer()), b.bitcast(args[1], I8.as_pointer())
        acc = b.alloca(I32)
        with for_range(b, p0, p1, name="nc") as plane:
            xin = gep(b, src, b.mul(plane, i64(count)))
            b.store(ir.Constant(I32, 0), acc)
            with for_range(b, 0, count, name="i") as i:
                b.store(b.add(b.load(acc), ext(load_at(b, xin, i), I32)), acc)
            total = b.sub(b.load(acc), ir.Constant(I32, count * int(x_zp)))
            zero = ir.Constant(I32, 0)
            store_at(b, emit_epilogue(b, module, epi, total, zero, mult), out, plane)

    parallel_for(b, n * c, [x, y], planes, work=n * c * count)
    b.ret_void()
    return KernelFn(fn)
