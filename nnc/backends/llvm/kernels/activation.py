"""Scalar f32 activation functions emitted inline (fused into elementwise, conv, gemm).

``emit_activation(builder, module, x, kind, alpha, beta)`` returns ``f(x)`` as an f32
``ir.Value``. Everything is straight-line code (selects, no branches) so loops calling it
vectorize; only ``erf``/``gelu`` call libm's ``erff``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from nnc.backends.llvm.loops import F32, f32, intrinsic

ActFn = Callable[[ir.IRBuilder, ir.Module, ir.Value, float, float], ir.Value]

# Taylor coefficients of tanh(x)/x in powers of x^2, used for |x| < _TANH_SMALL.
_TANH_TAYLOR = (
    1.0,
    -1.0 / 3.0,
    2.0 / 15.0,
    -17.0 / 315.0,
    62.0 / 2835.0,
    -1382.0 / 155925.0,
    21844.0 / 6081075.0,
    -929569.0 / 638512875.0,
)
_TANH_SMALL = 0.4


def _call1(b: ir.IRBuilder, m: ir.Module, fname: str, x: ir.Value) -> ir.Value:
    """``fname(x)`` for a unary f32 -> f32 intrinsic or libm function."""
    return b.call(intrinsic(m, fname, F32, [F32]), [x])


def _call2(b: ir.IRBuilder, m: ir.Module, fname: str, x: ir.Value, y: ir.Value) -> ir.Value:
    """``fname(x, y)`` for a binary f32 intrinsic (``llvm.maxnum.f32``...)."""
    return b.call(intrinsic(m, fname, F32, [F32, F32]), [x, y])


def fmax(b: ir.IRBuilder, m: ir.Module, x: ir.Value, y: ir.Value) -> ir.Value:
    """``maxnum(x, y)``."""
    return _call2(b, m, "llvm.maxnum.f32", x, y)


def fmin(b: ir.IRBuilder, m: ir.Module, x: ir.Value, y: ir.Value) -> ir.Value:
    """``minnum(x, y)``."""
    return _call2(b, m, "llvm.minnum.f32", x, y)


def fexp(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """``exp(x)`` via ``llvm.exp.f32``."""
    return _call1(b, m, "llvm.exp.f32", x)


def flog(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """``log(x)`` via ``llvm.log.f32``."""
    return _call1(b, m, "llvm.log.f32", x)


def fsqrt(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """``sqrt(x)`` via ``llvm.sqrt.f32``."""
    return _call1(b, m, "llvm.sqrt.f32", x)


def fabs(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """``|x|`` via ``llvm.fabs.f32``."""
    return _call1(b, m, "llvm.fabs.f32", x)


def _clamp01(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """``max(0, min(1, x))``."""
    return fmax(b, m, fmin(b, m, x, f32(1.0)), f32(0.0))


def ftanh(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """Branch-free ``tanh(x)``: Taylor series near 0, ``1 - 2/(exp(2|x|)+1)`` elsewhere.

    Accurate to a few ulp over the whole f32 range; NaN propagates.
    """
    ax = fabs(b, m, x)
    x2 = b.fmul(x, x)
    poly = f32(_TANH_TAYLOR[-1])
    for c in reversed(_TANH_TAYLOR[:-1]):
        poly = b.fadd(b.fmul(poly, x2), f32(c))
    small = b.fmul(x, poly)
    e = fexp(b, m, b.fmul(ax, f32(2.0)))
    big_abs = b.fsub(f32(1.0), b.fdiv(f32(2.0), b.fadd(e, f32(1.0))))
    big = _call2(b, m, "llvm.copysign.f32", big_abs, x)
    return b.select(b.fcmp_ordered("<", ax, f32(_TANH_SMALL)), small, big)


def fsigmoid(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """``1 / (1 + exp(-x))``."""
    e = fexp(b, m, b.fneg(x))
    return b.fdiv(f32(1.0), b.fadd(f32(1.0), e))


def ferf(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """``erf(x)`` via libm ``erff``."""
    return _call1(b, m, "erff", x)


def _relu(b, m, x, alpha, beta):
    return fmax(b, m, x, f32(0.0))


def _leaky_relu(b, m, x, alpha, beta):
    neg = b.fcmp_ordered("<", x, f32(0.0))
    return b.select(neg, b.fmul(x, f32(alpha)), x)


def _clip(b, m, x, alpha, beta):
    return fmin(b, m, fmax(b, m, x, f32(alpha)), f32(beta))


def _hard_sigmoid(b, m, x, alpha, beta):
    return _clamp01(b, m, b.fadd(b.fmul(x, f32(alpha)), f32(beta)))


def _hard_swish(b, m, x, alpha, beta):
    gate = _clamp01(b, m, b.fadd(b.fdiv(x, f32(6.0)), f32(0.5)))
    return b.fmul(x, gate)


def _gelu(b, m, x, alpha, beta):
    e = ferf(b, m, b.fmul(x, f32(math.sqrt(0.5))))
    return b.fmul(b.fmul(x, f32(0.5)), b.fadd(f32(1.0), e))


def _gelu_tanh(b, m, x, alpha, beta):
    x3 = b.fmul(b.fmul(x, x), x)
    inner = b.fmul(b.fadd(x, b.fmul(x3, f32(0.044715))), f32(math.sqrt(2.0 / math.pi)))
    return b.fmul(b.fmul(x, f32(0.5)), b.fadd(f32(1.0), ftanh(b, m, inner)))


def _elu(b, m, x, alpha, beta):
    neg = b.fmul(b.fsub(fexp(b, m, x), f32(1.0)), f32(alpha))
    return b.select(b.fcmp_ordered(">", x, f32(0.0)), x, neg)


def flog1p(b: ir.IRBuilder, m: ir.Module, t: ir.Value) -> ir.Value:
    """``log(1 + t)`` accurate for small ``t`` (``log(u) * t / (u - 1)`` with ``u = 1 + t``)."""
    u = b.fadd(f32(1.0), t)
    um1 = b.fsub(u, f32(1.0))
    safe = b.select(b.fcmp_ordered("==", um1, f32(0.0)), f32(1.0), um1)
    corrected = b.fmul(flog(b, m, u), b.fdiv(t, safe))
    return b.select(b.fcmp_ordered("==", um1, f32(0.0)), t, corrected)


def _softplus(b, m, x, alpha, beta):
    # max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|, accurate for x << 0.
    tail = flog1p(b, m, fexp(b, m, b.fneg(fabs(b, m, x))))
    return b.fadd(fmax(b, m, x, f32(0.0)), tail)


_TABLE: dict[str, ActFn] = {
    "none": lambda b, m, x, a, c: x,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "clip": _clip,
    "sigmoid": lambda b, m, x, a, c: fsigmoid(b, m, x),
    "tanh": lambda b, m, x, a, c: ftanh(b, m, x),
    "hard_sigmoid": _hard_sigmoid,
    "hard_swish": _hard_swish,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "erf": lambda b, m, x, a, c: ferf(b, m, x),
    "exp": lambda b, m, x, a, c: fexp(b, m, x),
    "log": lambda b, m, x, a, c: flog(b, m, x),
    "sqrt": lambda b, m, x, a, c: fsqrt(b, m, x),
    "neg": lambda b, m, x, a, c: b.fneg(x),
    "abs": lambda b, m, x, a, c: fabs(b, m, x),
    "reciprocal": lambda b, m, x, a, c: b.fdiv(f32(1.0), x),
    "elu": _elu,
    "softplus": _softplus,
}

ACTIVATIONS: frozenset[str] = frozenset(_TABLE)


def emit_activation(
    builder: ir.IRBuilder,
    module: ir.Module,
    x: ir.Value,
    kind: str,
    alpha: float = 0.0,
    beta: float = 0.0,
) -> ir.Value:
    """Emit ``kind(x)`` for an f32 value ``x`` at the builder's position; return the result.

    ``alpha``/``beta`` parametrise ``leaky_relu`` (alpha), ``elu`` (alpha), ``clip``
    (alpha=min, beta=max; pass -inf/+inf for an absent bound) and ``hard_sigmoid``
    (``max(0, min(1, alpha*x + beta))``); other kinds ignore them. Raises ``ValueError``
    for an unknown kind.
    """
    try:
        fn = _TABLE[kind]
    except KeyError:
        raise ValueError(f"unknown activation {kind!r}") from None
    return fn(builder, module, x, float(alpha), float(beta))
