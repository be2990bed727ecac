"""Softmax / LogSoftmax along one axis (opset-13 semantics), numerically stable."""

from __future__ import annotations

import math

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import fexp, flog, fmax_reduce
from nnc.backends.llvm.kernels.elementwise import Shape, accumulate, offset_step, reassoc
from nnc.backends.llvm.loops import F32_PTR, f32, i64
from nnc.backends.llvm.parallel import parallel_for


def _softmax_rows(b: ir.IRBuilder, m: ir.Module, x, out, rows: int, n: int, log: bool) -> None:
    """Softmax over contiguous rows of ``n`` elements: max, exp-sum, normalize passes.

    Rows run in parallel.
    """

    def body(b: ir.IRBuilder, first, last, args) -> None:
        _softmax_row_range(b, m, args[0], args[1], first, last, n, log)

    parallel_for(b, rows, [x, out], body, work=rows * n * 16)


def _softmax_row_range(b: ir.IRBuilder, m: ir.Module, x, out, first, last, n: int, log: bool):
    """Rows ``[first, last)`` of ``_softmax_rows``."""
    with loops.for_range(b, first, last, name="r") as r:
        base = b.mul(r, i64(n))

        def at(ptr: ir.Value, i: ir.Value) -> ir.Value:
            return loops.gep(b, ptr, offset_step(b, base, i, 1))

        mx = accumulate(
            b,
            n,
            f32(-math.inf),
            lambda a, v: fmax_reduce(b, m, a, v),
            lambda i: b.load(at(x, i)),
            "max",
        )

        def exp_term(i: ir.Value) -> ir.Value:
            e = fexp(b, m, b.fsub(b.load(at(x, i)), mx))
            if not log:
                b.store(e, at(out, i))
            return e

        total = accumulate(b, n, f32(0.0), lambda a, v: reassoc(b.fadd(a, v)), exp_term, "sum")
        if log:
            shift = b.fadd(mx, flog(b, m, total))
            with loops.for_range(b, 0, n, name="k") as k:
                b.store(b.fsub(b.load(at(x, k)), shift), at(out, k))
        else:
            inv = b.fdiv(f32(1.0), total)
            with loops.for_range(b, 0, n, name="k") as k:
                b.store(b.fmul(b.load(at(out, k)), inv), at(out, k))


def _softmax_strided(
    b: ir.IRBuilder, m: ir.Module, x, out, scratch, outer: int, n: int, inner: int, log: bool
) -> None:
    """Softmax along a non-innermost axis: every pass walks contiguous ``inner`` rows.

    Running max and sum live in ``scratch`` (two arrays of ``inner`` floats) so the inner
    loops vectorize across the ``inner`` independent softmaxes.
    """
    fs = b.bitcast(scratch, F32_PTR)
    mx, sm = fs, loops.gep(b, fs, _align16(inner))
    with loops.for_range(b, 0, outer, name="o") as o:
        obase = b.mul(o, i64(n * inner))
        with loops.for_range(b, 0, inner, name="k0") as k:
            loops.store_at(b, f32(-math.inf), mx, k)
            loops.store_at(b, f32(0.0), sm, k)
        with loops.for_range(b, 0, n, name="j") as j:
            rbase = b.add(obase, b.mul(j, i64(inner)))
            with loops.for_range(b, 0, inner, name="k1") as k:
                v = loops.load_at(b, x, b.add(rbase, k))
                loops.store_at(b, fmax_reduce(b, m, loops.load_at(b, mx, k), v), mx, k)
        with loops.for_range(b, 0, n, name="j2") as j:
            rbase = b.add(obase, b.mul(j, i64(inner)))
            with loops.for_range(b, 0, inner, name="k2") as k:
                off = b.add(rbase, k)
                e = fexp(b, m, b.fsub(loops.load_at(b, x, off), loops.load_at(b, mx, k)))
                if not log:
                    loops.store_at(b, e, out, off)
                loops.store_at(b, b.fadd(loops.load_at(b, sm, k), e), sm, k)
        with loops.for_range(b, 0, inner, name="k3") as k:
            s = loops.load_at(b, sm, k)
            fixed = b.fadd(loops.load_at(b, mx, k), flog(b, m, s)) if log else b.fdiv(f32(1.0), s)
            loops.store_at(b, fixed, sm, k)
        with loops.for_range(b, 0, n, name="j3") as j:
            rbase = b.add(obase, b.mul(j, i64(inner)))
            with loops.for_range(b, 0, inner, name="k4") as k:
                off = b.add(rbase, k)
                if log:
                    y = b.fsub(loops.load_at(b, x, off), loops.load_at(b, sm, k))
                else:
                    y = b.fmul(loops.load_at(b, out, off), loops.load_at(b, sm, k))
                loops.store_at(b, y, out, off)


def _align16(n: int) -> int:
    """``n`` rounded up to a multiple of 16 floats (64 bytes)."""
    return (n + 15) // 16 * 16


def emit_softmax(
    module: ir.Module, name: str, *, shape: Shape, axis: int, log: bool = False
) -> KernelFn:
    """Softmax (or log-softmax if ``log``) of ``shape`` along ``axis`` (may be negative).

    Args: x, out (both ``shape``) [, scratch]. Subtracts the max before ``exp``. When
    ``axis`` is not the last non-trivial dim, needs ``2 * 64B-aligned(inner)`` floats of
    scratch, where ``inner = prod(shape[axis+1:])``.
    """
    rank = len(shape)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for {shape}")
    outer = math.prod(shape[:axis])
    n = shape[axis] if rank else 1
    inner = math.prod(shape[axis + 1 :])
    strided = inner > 1 and n > 1 and outer * n * inner > 0
    scratch_bytes = 2 * _align16(inner) * 4 if strided else 0
    fn, b, args = loops.new_function(module, name, 2, scratch=strided)
    if outer * n * inner == 0:
        pass
    elif strided:
        _softmax_strided(b, module, args[0], args[1], args[2], outer, n, inner, log)
    else:
        _softmax_rows(b, module, args[0], args[1], outer * inner, n, log)
    b.ret_void()
    return KernelFn(fn, scratch_bytes)
