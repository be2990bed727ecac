"""Data movement kernels: Concat, Transpose, Slice, Pad and flat copies (Reshape)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.elementwise import (
    Shape,
    coalesce,
    offset_step,
    row_major_strides,
    strided_nest,
)
from nnc.backends.llvm.loops import I8_PTR, I64, VOID, f32, i64
from nnc.backends.llvm.parallel import parallel_for

TILE = 16
I1 = ir.IntType(1)


def _norm_axis(axis: int, rank: int) -> int:
    """``axis`` normalized to ``[0, rank)``."""
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis


def _copy_run(b: ir.IRBuilder, src, s_off, dst, d_off, n: int | ir.Value, s_stride: int = 1):
    """``dst[d_off + j] = src[s_off + j * s_stride]`` for j in [0, n) (one inner loop)."""
    with loops.for_range(b, 0, n, name="j") as j:
        v = loops.load_at(b, src, offset_step(b, s_off, j, s_stride))
        loops.store_at(b, v, dst, offset_step(b, d_off, j, 1))


def _strided_copy(
    b: ir.IRBuilder, src, dst, dims, s_strides, d_strides, s_base: int = 0, d_base: int = 0
) -> None:
    """Copy a strided box of ``dims`` from ``src`` to ``dst`` (dims coalesced first).

    The innermost loop has destination stride 1 when the destination is dense.
    """
    if math.prod(dims) == 0:
        return
    dims, (ss, ds) = coalesce(dims, [s_strides, d_strides])
    if not dims:
        dims, ss, ds = (1,), (0,), (0,)
    with strided_nest(b, dims[:-1], [ss[:-1], ds[:-1]], [s_base, d_base]) as (so, do):
        with loops.for_range(b, 0, dims[-1], name="j") as j:
            v = loops.load_at(b, src, offset_step(b, so, j, ss[-1]))
            loops.store_at(b, v, dst, offset_step(b, do, j, ds[-1]))


#: Floats per parallel task of a concat (contiguous pieces of one input's runs).
CONCAT_BLOCK = 1 << 14


def _memcpy(b: ir.IRBuilder, dst, src, count) -> None:
    """``dst[0:count] = src[0:count]`` (floats; ``count`` an i64 value)."""
    module = b.module
    memcpy = loops.intrinsic(module, "llvm.memcpy.p0.p0.i64", VOID, [I8_PTR, I8_PTR, I64, I1])
    nbytes = b.mul(count, i64(4))
    b.call(memcpy, [b.bitcast(dst, I8_PTR), b.bitcast(src, I8_PTR), nbytes, ir.Constant(I1, 0)])


def emit_concat(module: ir.Module, name: str, *, shapes: Sequence[Shape], axis: int) -> KernelFn:
    """Concatenate ``shapes`` along ``axis`` (may be negative).

    Args: in0..in{k-1}, out. Each input is copied as ``outer`` contiguous runs of
    ``shape[axis] * inner`` floats. ``parallel_for`` tasks of about ``CONCAT_BLOCK``
    floats: a piece of one run (long runs) or a block of whole runs (short ones); a
    plain copy, so any split gives the same bytes.
    """
    rank = len(shapes[0])
    axis = _norm_axis(axis, rank)
    outer = math.prod(shapes[0][:axis])
    inner = math.prod(shapes[0][axis + 1 :])
    chunks = [s[axis] * inner for s in shapes]
    row = sum(chunks)
    fn, b, args = loops.new_function(module, name, len(shapes) + 1)
    # Per input: (index, first task, tasks, offset of its runs in an output row, run).
    plan, ntasks, start = [], 0, 0
    for i, chunk in enumerate(chunks):
        if chunk and outer:
            count = outer * -(-chunk // CONCAT_BLOCK) if chunk >= CONCAT_BLOCK else None
            count = count or -(-outer // (CONCAT_BLOCK // chunk))
            plan.append((i, ntasks, count, start, chunk))
            ntasks += count
        start += chunk

    def copy(b: ir.IRBuilder, a, k, i: int, col: int, chunk: int) -> None:
        """Task ``k`` of input ``i``: a piece of one long run, or a block of short runs."""
        out = a[-1]
        if chunk >= CONCAT_BLOCK:
            pieces = -(-chunk // CONCAT_BLOCK)
            o, piece = b.udiv(k, i64(pieces)), b.urem(k, i64(pieces))
            off = b.mul(piece, i64(CONCAT_BLOCK))
            count = b.sub(i64(chunk), off)
            small = b.icmp_unsigned("<", count, i64(CONCAT_BLOCK))
            count = b.select(small, count, i64(CONCAT_BLOCK))
            src = loops.gep(b, a[i], b.add(b.mul(o, i64(chunk)), off))
            dst = loops.gep(b, out, b.add(b.add(b.mul(o, i64(row)), i64(col)), off))
            _memcpy(b, dst, src, count)
            return
        runs = CONCAT_BLOCK // chunk
        o0 = b.mul(k, i64(runs))
        o1 = b.add(o0, i64(runs))
        o1 = b.select(b.icmp_unsigned("<", o1, i64(outer)), o1, i64(outer))
        with loops.for_range(b, o0, o1, name="o") as o:
            d_off = b.add(b.mul(o, i64(row)), i64(col))
            _copy_run(b, a[i], b.mul(o, i64(chunk)), out, d_off, chunk)

    def tasks(b: ir.IRBuilder, lo, hi, a) -> None:
        with loops.for_range(b, lo, hi, name="t") as t:
            for i, first, count, col, chunk in plan:
                mine = b.and_(
                    b.icmp_unsigned(">=", t, i64(first)),
                    b.icmp_unsigned("<", t, i64(first + count)),
                )
                with b.if_then(mine):
                    copy(b, a, b.sub(t, i64(first)), i, col, chunk)

    parallel_for(b, ntasks, list(args), tasks, work=8 * outer * row)  # bytes moved
    b.ret_void()
    return KernelFn(fn)


@contextlib.contextmanager
def _tile_loop(b: ir.IRBuilder, n: int, name: str) -> Iterator[tuple[ir.Value, ir.Value]]:
    """``for t0 in range(0, n, TILE)``; yields ``(t0, min(TILE, n - t0))``."""
    with loops.for_range(b, 0, n, step=TILE, name=name) as t0:
        rem = b.sub(i64(n), t0)
        yield t0, b.select(b.icmp_signed("<", rem, i64(TILE)), rem, i64(TILE))


def _tiled_transpose(b: ir.IRBuilder, x, out, dims, sx, so, t: int) -> None:
    """Transpose where input dim ``t`` (stride 1) is not the output's innermost dim.

    Dims ``t`` and the last one are blocked by ``TILE`` so reads and writes both stay in
    cache; all other dims are plain outer loops.
    """
    last = len(dims) - 1
    rest = [d for d in range(last) if d != t]
    sub = [dims[d] for d in rest]
    with strided_nest(b, sub, [[sx[d] for d in rest], [so[d] for d in rest]], [0, 0]) as (bx, bo):
        with _tile_loop(b, dims[t], "tt") as (t0, nt), _tile_loop(b, dims[last], "tl") as (l0, nl):
            bx2 = offset_step(b, offset_step(b, bx, t0, sx[t]), l0, sx[last])
            bo2 = offset_step(b, offset_step(b, bo, t0, so[t]), l0, so[last])
            with loops.for_range(b, 0, nt, name="it") as it:
                _copy_run(
                    b,
                    x,
                    offset_step(b, bx2, it, sx[t]),
                    out,
                    offset_step(b, bo2, it, so[t]),
                    nl,
                    sx[last],
                )


def emit_transpose(module: ir.Module, name: str, *, shape: Shape, perm: Sequence[int]) -> KernelFn:
    """``out = x.transpose(perm)``; args x, out (shape ``[shape[p] for p in perm]``).

    Writes the output in row-major order. When the innermost output dim would read with a
    non-unit stride, the two dims involved are tiled.
    """
    fn, b, (x, out) = loops.new_function(module, name, 2)
    out_shape = tuple(shape[p] for p in perm)
    in_strides = row_major_strides(shape)
    if math.prod(shape):
        dims, (sx, so) = coalesce(
            out_shape, [[in_strides[p] for p in perm], row_major_strides(out_shape)]
        )
        if len(dims) >= 2 and sx[-1] != 1 and 1 in sx and dims[-1] > 1:
            _tiled_transpose(b, x, out, dims, sx, so, sx.index(1))
        else:
            _strided_copy(
                b, x, out, out_shape, [in_strides[p] for p in perm], row_major_strides(out_shape)
            )
    b.ret_void()
    return KernelFn(fn)


def emit_slice(
    module: ir.Module,
    name: str,
    *,
    shape: Shape,
    starts: Sequence[int],
    ends: Sequence[int],
    steps: Sequence[int],
) -> KernelFn:
    """Strided slice with one normalized ``(start, end, step)`` per axis (Python semantics).

    Args: x, out. Output dim d is ``len(range(starts[d], ends[d], steps[d]))``; steps may
    be negative. ``x[tuple(slice(s, e, st) ...)]`` with normalized starts.
    """
    fn, b, (x, out) = loops.new_function(module, name, 2)
    out_shape = tuple(len(range(s, e, st)) for s, e, st in zip(starts, ends, steps, strict=True))
    in_strides = row_major_strides(shape)
    base = sum(s * st for s, st in zip(starts, in_strides, strict=True))
    src_strides = [st * step for st, step in zip(in_strides, steps, strict=True)]
    _strided_copy(b, x, out, out_shape, src_strides, row_major_strides(out_shape), s_base=base)
    b.ret_void()
    return KernelFn(fn)


def _map_index(b: ir.IRBuilder, i: ir.Value, n: int, before: int, mode: str) -> ir.Value:
    """Input index for output index ``i`` along a padded dim (``reflect`` or ``edge``)."""
    j = b.sub(i, i64(before))
    if n == 1:
        return i64(0)
    if mode == "edge":
        j = b.select(b.icmp_signed("<", j, i64(0)), i64(0), j)
        return b.select(b.icmp_signed(">", j, i64(n - 1)), i64(n - 1), j)
    period = 2 * (n - 1)  # reflect without repeating the edge: numpy "reflect"
    j = b.srem(j, i64(period))
    j = b.select(b.icmp_signed("<", j, i64(0)), b.add(j, i64(period)), j)
    return b.select(b.icmp_signed(">=", j, i64(n)), b.sub(i64(period), j), j)


def _pad_mapped(b: ir.IRBuilder, x, out, shape, out_shape, before, mode) -> None:
    """Reflect/edge pad: outer dims map indices; the last dim is left/middle/right runs."""
    rank = len(shape)
    in_st, out_st = row_major_strides(shape), row_major_strides(out_shape)
    with contextlib.ExitStack() as stack:
        xo, oo = i64(0), i64(0)
        for d in range(rank - 1):
            i = stack.enter_context(loops.for_range(b, 0, out_shape[d], name=f"p{d}"))
            src = i if out_shape[d] == shape[d] else _map_index(b, i, shape[d], before[d], mode)
            xo = offset_step(b, xo, src, in_st[d])
            oo = offset_step(b, oo, i, out_st[d])
        n, lo, m = shape[-1], before[-1], out_shape[-1]
        for start, stop in ((0, lo), (lo + n, m)):
            with loops.for_range(b, start, stop, name="edge") as k:
                v = loops.load_at(b, x, b.add(xo, _map_index(b, k, n, lo, mode)))
                loops.store_at(b, v, out, b.add(oo, k))
        _copy_run(b, x, xo, out, b.add(oo, i64(lo)), n)


def emit_pad(
    module: ir.Module,
    name: str,
    *,
    shape: Shape,
    pads: Sequence[int],
    mode: str,
    value: float = 0.0,
) -> KernelFn:
    """ONNX Pad with non-negative ``pads`` = (begin_0..begin_{r-1}, end_0..end_{r-1}).

    Args: x, out. ``mode``: ``constant`` (fill with ``value``), ``reflect`` (mirror without
    repeating the edge, any pad width, like numpy) or ``edge`` (replicate the border).
    """
    rank = len(shape)
    before, after = tuple(pads[:rank]), tuple(pads[rank:])
    if mode not in ("constant", "reflect", "edge") or min(pads, default=0) < 0:
        raise ValueError(f"unsupported pad mode {mode!r} / pads {pads}")
    out_shape = tuple(n + p + q for n, p, q in zip(shape, before, after, strict=True))
    fn, b, (x, out) = loops.new_function(module, name, 2)
    if mode == "constant" or math.prod(out_shape) == math.prod(shape):
        if mode == "constant":
            with loops.for_range(b, 0, math.prod(out_shape), name="fill") as i:
                loops.store_at(b, f32(value), out, i)
        out_st = row_major_strides(out_shape)
        base = sum(p * s for p, s in zip(before, out_st, strict=True))
        _strided_copy(b, x, out, shape, row_major_strides(shape), out_st, d_base=base)
    elif math.prod(out_shape):
        if math.prod(shape) == 0:
            raise ValueError(f"cannot {mode}-pad an empty tensor {shape}")
        _pad_mapped(b, x, out, shape, out_shape, before, mode)
    b.ret_void()
    return KernelFn(fn)


def emit_copy(module: ir.Module, name: str, *, size: int) -> KernelFn:
    """``out[0:size] = x[0:size]`` (Reshape, Flatten, Identity...); args x, out."""
    fn, b, (x, out) = loops.new_function(module, name, 2)
    if size:
        memcpy = loops.intrinsic(module, "llvm.memcpy.p0.p0.i64", VOID, [I8_PTR, I8_PTR, I64, I1])
        dst, src = b.bitcast(out, I8_PTR), b.bitcast(x, I8_PTR)
        b.call(memcpy, [dst, src, i64(4 * size), ir.Constant(I1, 0)])
    b.ret_void()
    return KernelFn(fn)
