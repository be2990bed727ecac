"""Reductions (ReduceMean / ReduceSum / ReduceMax) over a static set of axes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import fmax_reduce
from nnc.backends.llvm.kernels.elementwise import (
    Shape,
    accumulate,
    coalesce,
    offset_step,
    reassoc,
    row_major_strides,
    strided_nest,
)
from nnc.backends.llvm.loops import f32

Combine = Callable[[ir.IRBuilder, ir.Module, ir.Value, ir.Value], ir.Value]

_KINDS: dict[str, tuple[float, Combine]] = {
    "sum": (0.0, lambda b, m, a, v: reassoc(b.fadd(a, v))),
    "mean": (0.0, lambda b, m, a, v: reassoc(b.fadd(a, v))),
    "max": (-math.inf, lambda b, m, a, v: fmax_reduce(b, m, a, v)),
}


def reduced_shape(shape: Shape, axes: Sequence[int], keepdims: bool) -> Shape:
    """The output shape of reducing ``shape`` over ``axes``."""
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def _out_strides(shape: Shape, axes: Sequence[int]) -> Shape:
    """Output element strides along each input dim (0 for reduced dims)."""
    kept = [n for d, n in enumerate(shape) if d not in axes]
    kept_strides = iter(row_major_strides(kept))
    return tuple(0 if d in axes else next(kept_strides) for d in range(len(shape)))


def _fill(b: ir.IRBuilder, ptr: ir.Value, n: int, value: float) -> None:
    """``ptr[0:n] = value``."""
    with loops.for_range(b, 0, n, name="fill") as i:
        loops.store_at(b, f32(value), ptr, i)


def emit_reduce(
    module: ir.Module, name: str, *, shape: Shape, axes: Sequence[int], keepdims: bool, kind: str
) -> KernelFn:
    """Reduce ``shape`` over ``axes`` (non-negative, sorted) with kind sum / mean / max.

    Args: x (``shape``), out (``reduced_shape(shape, axes, keepdims)``; ``keepdims`` does
    not change the memory layout). Empty ``axes`` means no reduction (a copy). Reducing
    an empty extent yields 0 (sum), NaN (mean) or -inf (max). The output is initialised to
    the identity, then the input is streamed in row-major order: an innermost reduced
    extent folds into a register; an innermost kept extent updates a contiguous out row.
    """
    init, combine = _KINDS[kind]
    axes = tuple(sorted(set(axes)))
    if any(not 0 <= a < len(shape) for a in axes):
        raise ValueError(f"axes {axes} out of range for {shape}")
    fn, b, (x, out) = loops.new_function(module, name, 2)
    n_out = math.prod(reduced_shape(shape, axes, keepdims))
    count = math.prod(shape[a] for a in axes)
    _fill(b, out, n_out, init)
    dims, (sx, so) = coalesce(shape, [row_major_strides(shape), _out_strides(shape, axes)])
    if not dims:  # every dim has size 1: a single element
        dims, sx, so = (1,), (1,), (0,)
    if math.prod(shape):
        with strided_nest(b, dims[:-1], [sx[:-1], so[:-1]], [0, 0]) as (ox, oo):
            if so[-1] == 0:
                acc = accumulate(
                    b,
                    dims[-1],
                    loops.load_at(b, out, oo),
                    lambda a, v: combine(b, module, a, v),
                    lambda j: loops.load_at(b, x, offset_step(b, ox, j, sx[-1])),
                )
                loops.store_at(b, acc, out, oo)
            else:
                with loops.for_range(b, 0, dims[-1], name="j") as j:
                    o = loops.gep(b, out, offset_step(b, oo, j, so[-1]))
                    v = loops.load_at(b, x, offset_step(b, ox, j, sx[-1]))
                    b.store(combine(b, module, b.load(o), v), o)
    if kind == "mean" and n_out:
        with loops.for_range(b, 0, n_out, name="scale") as i:
            loops.store_at(b, b.fdiv(loops.load_at(b, out, i), f32(count)), out, i)
    b.ret_void()
    return KernelFn(fn)
