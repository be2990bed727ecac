"""ONNX LRN (local response normalization across channels)."""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import fsqrt
from nnc.backends.llvm.loops import F32, f32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import parallel_for

Shape = tuple[int, ...]


def _neg_pow(b: ir.IRBuilder, module: ir.Module, t: ir.Value, beta: float) -> ir.Value:
    """``t ** -beta`` (square roots for the common exponents, ``llvm.pow`` otherwise)."""
    if beta == 0.0:
        return f32(1.0)
    if beta == 1.0:
        return b.fdiv(f32(1.0), t)
    if beta == 0.5:
        return b.fdiv(f32(1.0), fsqrt(b, module, t))
    if beta == 0.75:
        r = fsqrt(b, module, t)
        return b.fdiv(f32(1.0), b.fmul(r, fsqrt(b, module, r)))
    pow_fn = loops.intrinsic(module, "llvm.pow.f32", F32, [F32, F32])
    return b.call(pow_fn, [t, f32(-beta)])


def _clamp(b: ir.IRBuilder, v: ir.Value, lo: int, hi: int) -> ir.Value:
    """``min(max(v, lo), hi)`` on i64."""
    v = b.select(b.icmp_signed("<", v, i64(lo)), i64(lo), v)
    return b.select(b.icmp_signed(">", v, i64(hi)), i64(hi), v)


def emit_lrn(
    module: ir.Module,
    name: str,
    *,
    x_shape: Shape,
    size: int,
    alpha: float,
    beta: float,
    bias: float,
) -> KernelFn:
    """ONNX LRN over ``(N, C, *spatial)``; args ``x, out``.

    ``y = x / (bias + alpha/size * sum_{c' in window(c)} x[c']**2) ** beta`` with the
    window ``[c - floor((size-1)/2), c + ceil((size-1)/2)]`` clipped to the channels.
    The output row doubles as the sum-of-squares accumulator (contiguous inner loops).
    """
    n, c = x_shape[:2]
    plane = 1
    for s in x_shape[2:]:
        plane *= s
    lo, hi = (size - 1) // 2, size // 2
    fn, b, (x, y) = loops.new_function(module, name, 2)
    scale = alpha / size
    consts = (c, plane, lo, hi, scale, bias, beta)

    def body(b: ir.IRBuilder, first, last, args) -> None:
        _lrn_planes(b, module, args, first, last, consts)

    parallel_for(b, n * c, [x, y], body, work=n * c * plane * (size + 8))
    b.ret_void()
    return KernelFn(fn)


def _lrn_planes(b, module, args, first, last, p) -> None:
    """Output planes ``[first, last)`` (image-major) of ``emit_lrn``."""
    x, y = args
    c, plane, lo, hi, scale, bias, beta = p
    with for_range(b, first, last, name="nc") as nci:
        ni, ci = (b.sdiv(nci, i64(c)), b.srem(nci, i64(c)))
        img = gep(b, x, b.mul(ni, i64(c * plane)))
        row = b.mul(nci, i64(plane))
        xrow, yrow = gep(b, x, row), gep(b, y, row)
        with for_range(b, 0, plane, name="z") as s:
            store_at(b, f32(0.0), yrow, s)
        c0 = _clamp(b, b.sub(ci, i64(lo)), 0, c - 1)
        c1 = b.add(_clamp(b, b.add(ci, i64(hi)), 0, c - 1), i64(1))
        with for_range(b, c0, c1, name="cw") as cw:
            src = gep(b, img, b.mul(cw, i64(plane)))
            with for_range(b, 0, plane, name="s") as s:
                v = load_at(b, src, s)
                store_at(b, b.fadd(load_at(b, yrow, s), b.fmul(v, v)), yrow, s)
        with for_range(b, 0, plane, name="o") as s:
            t = b.fadd(f32(bias), b.fmul(f32(scale), load_at(b, yrow, s)))
            store_at(b, b.fmul(load_at(b, xrow, s), _neg_pow(b, module, t, beta)), yrow, s)
