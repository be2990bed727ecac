"""Scalar f32 activation functions emitted inline (fused into elementwise, conv, gemm).

``emit_activation(builder, module, x, kind, alpha, beta)`` returns ``f(x)`` as an f32
``ir.Value``. Everything is straight-line code (selects, no branches) so loops calling it
vectorize: ``exp`` and ``erf`` are inline polynomials (a few ulp) rather than
``llvm.exp.f32`` / libm calls, which LLVM would scalarize into one libm call per lane.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from nnc.backends.llvm.loops import F32, I32, f32, intrinsic

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

# exp: x = n*ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2); e^r by Taylor to r^7.
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(8))
_EXP_MAX = 88.72283935546875  # float32(ln(FLT_MAX)) rounded up: above it exp is +inf
_EXP_MIN = -104.0  # below it exp rounds to 0 (smallest denormal is 2^-149)

# erf(z)/z as a polynomial in z^2 for 0 <= z < 1 (IRLS minimax fit vs math.erf, 1.2e-9).
_ERF_SMALL = (
    1.1283791656995916,
    -0.37612625616796125,
    0.11283582591520282,
    -0.026853697250461214,
    0.0051880962606865874,
    -0.0008008049844182624,
    7.846440273419118e-05,
)
# erfc(z) * exp(z^2) as a polynomial in (1/z - 0.5) for 1 <= z <= 10 (fit error 1.4e-8).
_ERFCX_TAIL = (
    0.25539567276675074,
    0.427185838114468,
    -0.18552652686845242,
    0.022849644227670825,
    0.06452682288503915,
    -0.08754576101344347,
    0.06394688974850621,
    -0.011612812022722022,
    -0.05346508589514204,
    0.08747364530289499,
    -0.0482805198428941,
)


def _call1(b: ir.IRBuilder, m: ir.Module, fname: str, x: ir.Value) -> ir.Value:
    """``fname(x)`` for a unary f32 -> f32 intrinsic or libm function."""
    return b.call(intrinsic(m, fname, F32, [F32]), [x])


def _call2(b: ir.IRBuilder, m: ir.Module, fname: str, x: ir.Value, y: ir.Value) -> ir.Value:
    """``fname(x, y)`` for a binary f32 intrinsic (``llvm.maxnum.f32``...)."""
    return b.call(intrinsic(m, fname, F32, [F32, F32]), [x, y])


def fmax(b: ir.IRBuilder, m: ir.Module, x: ir.Value, y: ir.Value) -> ir.Value:
    """``maxnum(x, y)``."""
    return _call2(b, m, "llvm.maxnum.f32", x, y)


def fmax_reduce(b: ir.IRBuilder, m: ir.Module, acc: ir.Value, x: ir.Value) -> ir.Value:
    """``maxnum(acc, x)`` for max-reductions: flagged ``nnan nsz`` so LLVM vectorizes it.

    Without ``nnan`` LLVM 22 vectorizes maxnum reductions with a NaN-check fallback that
    can drop the loop remainder (wrong results); with NaN inputs the result is unspecified.
    """
    fn = intrinsic(m, "llvm.maxnum.f32", F32, [F32, F32])
    return b.call(fn, [acc, x], fastmath=("nnan", "nsz"))


def fmin(b: ir.IRBuilder, m: ir.Module, x: ir.Value, y: ir.Value) -> ir.Value:
    """``minnum(x, y)``."""
    return _call2(b, m, "llvm.minnum.f32", x, y)


def _horner(b: ir.IRBuilder, coeffs: tuple[float, ...], t: ir.Value) -> ir.Value:
    """``sum(coeffs[k] * t**k)`` by Horner's rule (FMA-contractible)."""
    acc = f32(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        mul = b.fmul(acc, t)
        acc = b.fadd(mul, f32(c))
        mul.flags.append("contract")  # allow fused multiply-add
        acc.flags.append("contract")
    return acc


def _pow2(b: ir.IRBuilder, n: ir.Value) -> ir.Value:
    """``2.0**n`` for an i32 ``n`` in [-126, 127] (built from the exponent bits)."""
    bits = b.shl(b.add(n, ir.Constant(I32, 127)), ir.Constant(I32, 23))
    return b.bitcast(bits, F32)


def fexp(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """Branch-free, vectorizable ``exp(x)`` (about 1 ulp; +inf above ``_EXP_MAX``, NaN kept).

    ``n = rint(x / ln2)``, ``r = x - n ln2`` (two-constant Cody-Waite), ``e^r`` by Taylor
    series, scaled by ``2^(n//2) * 2^(n - n//2)`` so denormal results stay graceful.
    """
    xc = fmin(b, m, fmax(b, m, x, f32(_EXP_MIN)), f32(_EXP_MAX))
    n = _call1(b, m, "llvm.rint.f32", b.fmul(xc, f32(1.0 / math.log(2.0))))
    r = b.fsub(b.fsub(xc, b.fmul(n, f32(_LN2_HI))), b.fmul(n, f32(_LN2_LO)))
    ni = b.fptosi(n, I32)
    half = b.ashr(ni, ir.Constant(I32, 1))
    y = b.fmul(b.fmul(_horner(b, _EXP_TAYLOR, r), _pow2(b, half)), _pow2(b, b.sub(ni, half)))
    y = b.select(b.fcmp_ordered(">", x, f32(_EXP_MAX)), f32(math.inf), y)
    return b.select(b.fcmp_unordered("uno", x, x), x, y)


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


def _erf_parts(b: ir.IRBuilder, m: ir.Module, x: ir.Value):
    """``(z < 1, erf(z) for z < 1, erfc(z) for z >= 1)`` with ``z = |x|``; branch-free."""
    z = fabs(b, m, x)
    small = b.fmul(z, _horner(b, _ERF_SMALL, b.fmul(z, z)))
    zt = fmin(b, m, fmax(b, m, z, f32(1.0)), f32(10.0))
    u = b.fsub(b.fdiv(f32(1.0), zt), f32(0.5))
    tail = b.fmul(fexp(b, m, b.fneg(b.fmul(zt, zt))), _horner(b, _ERFCX_TAIL, u))
    return b.fcmp_ordered("<", z, f32(1.0)), small, tail


def ferf(b: ir.IRBuilder, m: ir.Module, x: ir.Value) -> ir.Value:
    """Branch-free, vectorizable ``erf(x)`` (a few ulp); NaN propagates."""
    is_small, small, tail = _erf_parts(b, m, x)
    y = b.select(is_small, small, b.fsub(f32(1.0), tail))
    y = _call2(b, m, "llvm.copysign.f32", y, x)
    return b.select(b.fcmp_unordered("uno", x, x), x, y)


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
    # 0.5 x (1 + erf(u)), u = x/sqrt2; for u <= -1 use 1 + erf(u) = erfc(|u|) (no cancellation).
    is_small, small, tail = _erf_parts(b, m, b.fmul(x, f32(math.sqrt(0.5))))
    pos = b.select(is_small, b.fadd(f32(1.0), small), b.fsub(f32(2.0), tail))
    neg = b.select(is_small, b.fsub(f32(1.0), small), tail)
    one_plus = b.select(b.fcmp_ordered(">=", x, f32(0.0)), pos, neg)
    return b.fmul(b.fmul(x, f32(0.5)), one_plus)


def _gelu_tanh(b, m, x, alpha, beta):
    # 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
    x3 = b.fmul(b.fmul(x, x), x)
    u2 = b.fmul(b.fadd(x, b.fmul(x3, f32(0.044715))), f32(2.0 * math.sqrt(2.0 / math.pi)))
    return b.fmul(x, fsigmoid(b, m, u2))


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
