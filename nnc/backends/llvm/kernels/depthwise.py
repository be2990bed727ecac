"""Depthwise convolution (one input channel per group) vectorized along output rows.

The input is read in place (no padded copy): ``window.emit_plane`` walks the output rows
of one plane (border rows with their static kernel-row lists, interior rows in a runtime
loop) in chunks of ``width`` columns, and hands each chunk the input run of every tap
(one vector load for stride 1, a ``stride*width``-lane load plus an even-lane shuffle
otherwise; lanes outside the input row are masked to 0). Per chunk ``acc = bias +
sum_taps splat(w[m, kh, kw]) * run`` (taps in ``kh``, ``kw`` order), then residual,
activation and a (masked) store into the NCHW output. Narrow planes use narrower vectors
(7 columns: 8 lanes, not 16).

Loop nest: ``for (image, output channel)`` (one output plane per task, on the thread
pool when the conv is big enough) -> rows -> chunks -> taps. Every task computes its
plane the same way whatever the thread count (bitwise-identical results).
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.pool import Axis
from nnc.backends.llvm.kernels.simd import (
    load_lanes,
    splat,
    store_lanes,
    vec_type,
    vector_activation,
)
from nnc.backends.llvm.kernels.window import emit_plane, run_width
from nnc.backends.llvm.loops import for_range, gep, i64, load_at
from nnc.backends.llvm.parallel import parallel_for


def emit_depthwise(module, name: str, g, width: int, has_bias, has_residual, act) -> KernelFn:
    """Depthwise conv for ``g`` (a ``conv2d.ConvGeometry`` with ``cg == 1``); args
    ``x, w (M,1,KH,KW), [bias], [residual], out`` (no scratch)."""
    while width > 4 and width // 2 >= g.ow:  # narrow planes: fewer idle lanes
        width //= 2
    vec = vec_type(run_width(width, g.sw))
    fma = loops.intrinsic(module, f"llvm.fmuladd.v{vec.count}f32", vec, [vec] * 3)
    n_args = 3 + has_bias + has_residual
    fn, b, all_args = loops.new_function(module, name, n_args)
    hax = Axis(g.h, g.kh, g.sh, g.pt, g.pb, g.dh, g.oh)
    wax = Axis(g.w, g.kw, g.sw, g.pl, g.pr, g.dw, g.ow)
    work = 2 * g.n * g.m * g.oh * g.ow * g.kh * g.kw

    def planes(b, lo, hi, args) -> None:  # output planes [lo, hi) (parallel_for body)
        x, w, out = args[0], args[1], args[n_args - 1]
        bias = args[2] if has_bias else None
        res = args[2 + has_bias] if has_residual else None
        with for_range(b, lo, hi, name="plane") as nm:
            mi = b.urem(nm, i64(g.m))
            ni = b.udiv(nm, i64(g.m))
            ci = b.udiv(mi, i64(g.mg))
            x_p = gep(b, x, b.mul(b.add(b.mul(ni, i64(g.c)), ci), i64(g.h * g.w)))
            o_p = b.mul(nm, i64(g.oh * g.ow))
            w_m = gep(b, w, b.mul(mi, i64(g.kh * g.kw)))
            wts = {
                (i, j): splat(b, load_at(b, w_m, i64(i * g.kw + j)), vec)
                for i in range(g.kh)
                for j in range(g.kw)
            }
            init = splat(b, load_at(b, bias, mi), vec) if bias is not None else None

            def row_body(khs, oh):
                o_row = b.add(o_p, b.mul(oh, i64(g.ow)))

                def chunk(b, q0, ch, loads) -> None:
                    acc = init if init is not None else ir.Constant(vec, None)
                    for kh in khs:
                        for kw in ch.taps:
                            acc = b.call(fma, [wts[kh, kw], loads(kh, kw), acc])
                    off = b.add(o_row, q0)
                    if res is not None:
                        acc = b.fadd(acc, load_lanes(b, module, vec, gep(b, res, off), ch.count))
                    acc = vector_activation(b, module, acc, *act)
                    store_lanes(b, module, acc, gep(b, out, off), ch.count)

                return chunk

            emit_plane(b, module, hax, wax, vec, x_p, ir.Constant(vec, None), row_body)

    parallel_for(b, g.n * g.m, list(all_args), planes, work=work)
    b.ret_void()
    return KernelFn(fn)
