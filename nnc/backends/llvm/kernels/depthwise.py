"""Depthwise convolution (one input channel per group) vectorized along output rows.

Per input channel, the plane is copied once into scratch with its zero padding
(``hp x wp``, ``hp = h + pt + pb``, ``wp = w + pl + pr``): tap ``(kh, kw)`` of output
pixel ``(oh, ow)`` then sits at ``(oh*sh + kh*dh)*wp + kw*dw + ow*sw`` with no bounds
checks. Each output row is computed in chunks of ``width`` pixels (one vector; the last
chunk masked): ``acc = bias + sum_taps splat(w[m, kh, kw]) * x_run``, where ``x_run`` is
one vector load for stride 1 and a ``stride*width`` load with an even-lane shuffle
otherwise; then residual, activation and a (masked) store into the NCHW output. No
border special cases: a row of 7 pixels costs one vector per tap instead of seven scalars.

Loop nest: ``for slot`` (on the thread pool: up to ``PLANE_SLOTS`` ranges of channels,
each with its own padded plane in scratch; one slot in serial code) -> ``for (image,
input channel)`` -> fill -> ``for`` channel multiplier -> ``for oh`` -> static chunks ->
taps.
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm import parallel as parallel_mod
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.gemm import align64, scratch_f32
from nnc.backends.llvm.kernels.simd import (
    load_lanes,
    splat,
    store_lanes,
    vec_ptr,
    vec_type,
    vector_activation,
)
from nnc.backends.llvm.loops import f32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import module_threads, parallel_for

#: Most padded planes (channel ranges) a parallel depthwise conv keeps in scratch.
PLANE_SLOTS = 16


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _zero(b: ir.IRBuilder, ptr: ir.Value, start, stop: int) -> None:
    if isinstance(start, int) and start >= stop:
        return
    with for_range(b, start, stop, name="z") as i:
        store_at(b, f32(0.0), ptr, i)


def _padded(g) -> tuple[int, int]:
    """Rows and row pitch of the padded plane."""
    return g.h + g.pt + g.pb, g.w + g.pl + g.pr


def _fill_plane(b: ir.IRBuilder, g, src: ir.Value, dst: ir.Value) -> None:
    """Zero-padded copy of one ``h x w`` input plane into ``dst`` (pitch ``wp``)."""
    hp, wp = _padded(g)
    _zero(b, dst, 0, g.pt * wp)
    _zero(b, dst, (g.pt + g.h) * wp, hp * wp)
    with for_range(b, 0, g.h, name="fi") as i:
        row = gep(b, dst, b.add(b.mul(i, i64(wp)), i64(g.pt * wp)))
        s_row = gep(b, src, b.mul(i, i64(g.w)))
        _zero(b, row, 0, g.pl)
        with for_range(b, 0, g.w, name="fj") as j:
            store_at(b, load_at(b, s_row, j), row, b.add(j, i64(g.pl)))
        _zero(b, row, g.pl + g.w, wp)


def scratch_floats(g, width: int) -> int:
    """Floats of the padded plane plus the slack read by the last (masked) chunks."""
    hp, wp = _padded(g)
    last_row = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh
    reach = last_row * wp + (g.kw - 1) * g.dw + _ceil_div(g.ow, width) * width * g.sw
    return _ceil_div(max(reach, hp * wp), 16) * 16


def _load_run(b, vec: ir.VectorType, ptr: ir.Value, stride: int) -> ir.Value:
    """``width`` floats at ``ptr[0], ptr[stride], ...`` (one wide load + shuffle)."""
    if stride == 1:
        return b.load(vec_ptr(b, ptr, 0, vec), align=4)
    wide = ir.VectorType(vec.element, vec.count * stride)
    v = b.load(vec_ptr(b, ptr, 0, wide), align=4)
    lanes = ir.Constant(
        ir.VectorType(ir.IntType(32), vec.count), [i * stride for i in range(vec.count)]
    )
    return b.shuffle_vector(v, ir.Constant(wide, ir.Undefined), lanes)


def emit_depthwise(module, name: str, g, width: int, has_bias, has_residual, act) -> KernelFn:
    """Depthwise conv for ``g`` (a ``conv2d.ConvGeometry`` with ``cg == 1``); args
    ``x, w (M,1,KH,KW), [bias], [residual], out`` plus scratch."""
    vec = vec_type(width)
    fma = loops.intrinsic(module, f"llvm.fmuladd.v{width}f32", vec, [vec] * 3)
    floats = scratch_floats(g, width)
    n_args = 3 + has_bias + has_residual
    fn, b, all_args = loops.new_function(module, name, n_args, scratch=True)
    hp, wp = _padded(g)
    # Parallel: the channels are cut into ``slots`` ranges, each with its own plane.
    work = 2 * g.n * g.m * g.oh * g.ow * g.kh * g.kw
    parallel = module_threads(module) != 1 and work >= parallel_mod.MIN_PARALLEL_WORK
    slots = min(g.n * g.c, PLANE_SLOTS) if parallel else 1
    stride = align64(4 * floats) // 4

    def slot_range(b, lo, hi, args) -> None:  # slots [lo, hi) (parallel_for body)
        with for_range(b, lo, hi, name="slot") as slot:
            xs = gep(b, scratch_f32(b, args[-1], 0), b.mul(slot, i64(stride)))
            _zero(b, xs, hp * wp, floats)  # slack: read by masked chunks, never stored
            first = b.udiv(b.mul(slot, i64(g.n * g.c)), i64(slots))
            last = b.udiv(b.mul(b.add(slot, i64(1)), i64(g.n * g.c)), i64(slots))
            _channels(b, module, g, vec, fma, args, xs, first, last, (has_bias, has_residual, act))

    parallel_for(b, slots, list(all_args), slot_range, work=work)
    b.ret_void()
    return KernelFn(fn, slots * stride * 4)


def _channels(b, module, g, vec, fma, args, xs, first, last, flags) -> None:
    """Input channels ``[first, last)`` (image-major) of ``emit_depthwise``, using the
    padded plane ``xs``."""
    has_bias, has_residual, act = flags
    n_args = 3 + has_bias + has_residual
    x, w, out = args[0], args[1], args[n_args - 1]
    bias = args[2] if has_bias else None
    res = args[2 + has_bias] if has_residual else None
    width = vec.count
    hp, wp = _padded(g)
    ntaps = g.kh * g.kw
    taps = [i * g.dh * wp + j * g.dw for i in range(g.kh) for j in range(g.kw)]
    plane_out = g.oh * g.ow
    with for_range(b, first, last, name="chan") as nc:
        _fill_plane(b, g, gep(b, x, b.mul(nc, i64(g.h * g.w))), xs)
        ci = b.urem(nc, i64(g.c))
        ni = b.udiv(nc, i64(g.c))
        with for_range(b, 0, g.mg, name="mul") as k:
            mi = b.add(b.mul(ci, i64(g.mg)), k)
            wts = [splat(b, load_at(b, w, b.add(b.mul(mi, i64(ntaps)), i64(t))), vec)
                   for t in range(ntaps)]  # fmt: skip
            init = splat(b, load_at(b, bias, mi), vec) if bias is not None else None
            o_plane = b.mul(b.add(b.mul(ni, i64(g.m)), mi), i64(plane_out))
            with for_range(b, 0, g.oh, name="oh") as oh:
                src = gep(b, xs, b.mul(oh, i64(g.sh * wp)))
                o_row = b.add(o_plane, b.mul(oh, i64(g.ow)))
                for q in range(0, g.ow, width):
                    count = min(width, g.ow - q)
                    acc = init if init is not None else ir.Constant(vec, None)
                    for t, off in enumerate(taps):
                        xv = _load_run(b, vec, gep(b, src, off + q * g.sw), g.sw)
                        acc = b.call(fma, [wts[t], xv, acc])
                    dst = gep(b, out, b.add(o_row, i64(q)))
                    if res is not None:
                        rv = load_lanes(b, module, vec, gep(b, res, b.add(o_row, i64(q))), count)
                        acc = b.fadd(acc, rv)
                    store_lanes(b, module, vector_activation(b, module, acc, *act), dst, count)
