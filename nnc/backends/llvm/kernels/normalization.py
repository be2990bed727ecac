"""Normalization kernels: inference BatchNormalization and ONNX LayerNormalization."""

from __future__ import annotations

import math

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import fsqrt
from nnc.backends.llvm.kernels.elementwise import Shape, accumulate, offset_step, reassoc
from nnc.backends.llvm.loops import f32, i64
from nnc.backends.llvm.parallel import parallel_for


def emit_batch_norm(module: ir.Module, name: str, *, x_shape: Shape, epsilon: float) -> KernelFn:
    """Inference BatchNormalization over axis 1 of ``x_shape`` (rank >= 2).

    Args: x, scale, bias, mean, var (each ``(C,)``), out (``x_shape``).
    ``out = (x - mean) / sqrt(var + epsilon) * scale + bias``, computed per channel as
    ``x * a + (bias - mean * a)`` with ``a = scale / sqrt(var + epsilon)``.
    """
    if len(x_shape) < 2:
        raise ValueError(f"BatchNormalization needs rank >= 2, got {x_shape}")
    n, c = x_shape[0], x_shape[1]
    inner = math.prod(x_shape[2:])
    fn, b, args = loops.new_function(module, name, 6)

    def planes(b: ir.IRBuilder, first, last, args) -> None:
        x, scale, bias, mean, var, out = args
        with loops.for_range(b, first, last, name="nc") as nci:
            ci = b.srem(nci, i64(c)) if n > 1 else nci
            std = fsqrt(b, module, b.fadd(loops.load_at(b, var, ci), f32(epsilon)))
            a = b.fdiv(loops.load_at(b, scale, ci), std)
            shift = b.fsub(loops.load_at(b, bias, ci), b.fmul(loops.load_at(b, mean, ci), a))
            base = b.mul(nci, i64(inner))
            with loops.for_range(b, 0, inner, name="s") as si:
                off = b.add(base, si)
                y = b.fadd(b.fmul(loops.load_at(b, x, off), a), shift)
                loops.store_at(b, y, out, off)

    parallel_for(b, n * c, args, planes, work=n * c * inner * 2)
    b.ret_void()
    return KernelFn(fn)


def _row_mean(b: ir.IRBuilder, x: ir.Value, base: ir.Value, n: int) -> ir.Value:
    """``mean(x[base : base + n])`` (vectorized reassociating sum)."""
    total = accumulate(
        b,
        n,
        f32(0.0),
        lambda acc, v: reassoc(b.fadd(acc, v)),
        lambda i: loops.load_at(b, x, offset_step(b, base, i, 1)),
        name="sum",
    )
    return b.fdiv(total, f32(n))


def _row_variance(b: ir.IRBuilder, x: ir.Value, base: ir.Value, n: int, mean: ir.Value):
    """Population variance of ``x[base : base + n]`` around ``mean`` (two-pass)."""

    def term(i: ir.Value) -> ir.Value:
        d = b.fsub(loops.load_at(b, x, offset_step(b, base, i, 1)), mean)
        return b.fmul(d, d)

    total = accumulate(b, n, f32(0.0), lambda acc, v: reassoc(b.fadd(acc, v)), term, name="sq")
    return b.fdiv(total, f32(n))


def emit_layer_norm(
    module: ir.Module, name: str, *, shape: Shape, axis: int, epsilon: float, has_bias: bool
) -> KernelFn:
    """ONNX LayerNormalization (output Y only): normalize over dims ``axis..rank-1``.

    Args: x (``shape``), scale, [bias] (both ``shape[axis:]``, bias iff ``has_bias``), out.
    ``out = (x - mean) / sqrt(var + epsilon) * scale + bias`` per row of
    ``prod(shape[axis:])`` elements; ``axis`` may be negative.
    """
    rank = len(shape)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank:
        raise ValueError(f"axis {axis} out of range for {shape}")
    rows, n = math.prod(shape[:axis]), math.prod(shape[axis:])
    fn, b, args = loops.new_function(module, name, 4 if has_bias else 3)
    if rows * n == 0:
        b.ret_void()
        return KernelFn(fn)

    def body(b: ir.IRBuilder, first, last, args) -> None:
        x, scale, out = args[0], args[1], args[-1]
        bias = args[2] if has_bias else None
        with loops.for_range(b, first, last, name="r") as r:
            base = b.mul(r, i64(n))
            mean = _row_mean(b, x, base, n)
            var = _row_variance(b, x, base, n, mean)
            inv = b.fdiv(f32(1.0), fsqrt(b, module, b.fadd(var, f32(epsilon))))
            with loops.for_range(b, 0, n, name="k") as k:
                off = b.add(base, k)
                y = b.fmul(b.fsub(loops.load_at(b, x, off), mean), inv)
                y = b.fmul(y, loops.load_at(b, scale, k))
                if bias is not None:
                    y = b.fadd(y, loops.load_at(b, bias, k))
                loops.store_at(b, y, out, off)

    parallel_for(b, rows, args, body, work=rows * n * 6)
    b.ret_void()
    return KernelFn(fn)
