"""Numeric contract of the int8 kernels and the vector epilogue that implements it.

Integer part (exact, int32 with wrap-around; exact whenever the true sum fits int32,
i.e. always for ``K * 255 * 128 < 2**31``)::

    acc[c] = sum_k (x_q[k] - x_zp) * w_q[c, k] + bias_i32[c]

computed as ``sum_k x'[k] * w_q[c, k] + (bias_i32[c] - x_zp' * sum_k w_q[c, k])`` where
``x'``/``x_zp'`` are the activations / zero point in the kernel's domain (see ``qisa``)
and the weight row sums are folded into the bias at compile time. Weights are s8,
symmetric (``w_zp = 0``), per output channel ``c``.

Requantized output (``y_dtype`` u8 or i8): exactly ``docs/quantization.md`` /
``nnc.ir.ops_quant`` (whose helpers compute the constants); float32 math, one rounding per
operation, no fused multiply-add, ``rint`` = round half to even::

    mult[c] = (f32(x_scale) * f32(w_scale[c])) / f32(y_scale)      (ops_quant.requant_multiplier)
    t       = f32(acc[c]) * mult[c]
    t       = t + f32(r_q - r_zp) * r_mult                          (residual; r_mult =
                                                 f32(r_scale) / f32(y_scale), residual_multiplier)
    y       = clamp(rint(t) + y_zp, lo, hi)                         (ops_quant.clamp_range)

Dequantized output (``y_dtype`` f32, an nnc extension for float last layers)::

    s[c] = f32(x_scale) * f32(w_scale[c]);  y = f32(acc[c]) * s[c] + bias_f32[c]

then relu (``max(y, 0)``) or clip (``min(max(y, lo), hi)``) in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from nnc.backends.llvm.loops import F32, I32, intrinsic
from nnc.ir import ops_quant as oq

QRANGE = {"u8": (0, 255), "i8": (-128, 127)}


def requant_multiplier(x_scale, w_scale, y_scale) -> np.ndarray:
    """Per-channel ``(f32(x_scale) * f32(w_scale)) / f32(y_scale)`` (float32)."""
    return np.asarray(oq.requant_multiplier(x_scale, w_scale, y_scale), np.float32).reshape(-1)


def residual_multiplier(r_scale, y_scale) -> float:
    """``f32(r_scale) / f32(y_scale)``."""
    return float(oq.residual_multiplier(r_scale, y_scale))


def dequant_multiplier(x_scale, w_scale) -> np.ndarray:
    """Per-channel ``f32(x_scale) * f32(w_scale)`` (float32)."""
    return np.float32(x_scale) * np.asarray(w_scale, np.float32).reshape(-1)


def quant_range(y_dtype: str, y_scale: float, y_zp: int, activation: str, alpha, beta):
    """``(lo, hi)`` of a quantized output with a fused relu/clip (``ops_quant.clamp_range``);
    ``lo > hi`` is possible for a degenerate clip and then every output is ``hi``."""
    if y_dtype not in QRANGE:
        raise ValueError(f"quantized output dtype must be u8 or i8, got {y_dtype}")
    return oq.clamp_range(activation, float(alpha), float(beta), y_scale, int(y_zp), y_dtype)


@dataclass(frozen=True)
class Epilogue:
    """Static part of the epilogue.

    ``y_dtype`` u8/i8 (requantize) or f32 (dequantize). Quantized: ``y_zp``, ``qmin``,
    ``qmax``; residual when ``r_dtype`` is set (``r_zp``, ``r_mult``). Float: ``f_lo``/
    ``f_hi`` clamp bounds (``None`` = unbounded) and ``f_bias`` (a float bias vector is
    passed).
    """

    y_dtype: str
    y_zp: int = 0
    qmin: int = 0
    qmax: int = 0
    r_dtype: str | None = None
    r_zp: int = 0
    r_mult: float = 0.0
    f_lo: float | None = None
    f_hi: float | None = None
    f_bias: bool = False

    @property
    def out_bytes(self) -> int:
        """Bytes per output element."""
        return 4 if self.y_dtype == "f32" else 1


def splat(b: ir.IRBuilder, value: ir.Value, n: int) -> ir.Value:
    """Broadcast a scalar to ``<n x type>``."""
    vec = ir.VectorType(value.type, n)
    one = b.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, n), [0] * n)
    return b.shuffle_vector(one, ir.Constant(vec, ir.Undefined), mask)


def _like(ty: ir.Type, scalar: ir.Type) -> ir.Type:
    """``scalar`` with the lane count of ``ty`` (scalar when ``ty`` is not a vector)."""
    return ir.VectorType(scalar, ty.count) if isinstance(ty, ir.VectorType) else scalar


def _const(ty: ir.Type, value) -> ir.Constant:
    """``value`` in every lane of ``ty`` (or the scalar constant)."""
    return (
        ir.Constant(ty, [value] * ty.count)
        if isinstance(ty, ir.VectorType)
        else ir.Constant(ty, value)
    )


def _fclamp(b: ir.IRBuilder, v: ir.Value, lo, hi) -> ir.Value:
    """``min(max(v, lo), hi)`` (bounds are numbers, values of v's type, or None)."""
    if lo is not None:
        c = lo if isinstance(lo, ir.Value) else _const(v.type, float(lo))
        v = b.select(b.fcmp_ordered("<", v, c), c, v)
    if hi is not None:
        c = hi if isinstance(hi, ir.Value) else _const(v.type, float(hi))
        v = b.select(b.fcmp_ordered(">", v, c), c, v)
    return v


@dataclass(frozen=True)
class EpiValues:
    """The epilogue's parameters as IR values of one lane shape (run-time arguments of a
    shared micro-kernel) or numbers: ``y_zp``/``r_zp`` i32, ``q_lo``/``q_hi`` (``qmin -
    y_zp``, ``qmax - y_zp``), ``r_mult``, ``f_lo``/``f_hi`` f32 (``None`` = unbounded)."""

    y_zp: object = 0
    q_lo: object = 0.0
    q_hi: object = 0.0
    r_zp: object = 0
    r_mult: object = 0.0
    f_lo: object = None
    f_hi: object = None


#: Scalar argument types of ``epilogue_args`` (in order).
EPI_ARG_TYPES = (I32, F32, F32, I32, F32, F32, F32)


def epilogue_key(epi: Epilogue) -> Epilogue:
    """``epi`` with its numbers zeroed: what the generated code depends on when the
    numbers are passed at run time (``epilogue_args``)."""
    return Epilogue(
        epi.y_dtype, r_dtype=epi.r_dtype, f_bias=epi.f_bias,
        f_lo=None if epi.f_lo is None else 0.0, f_hi=None if epi.f_hi is None else 0.0,
    )  # fmt: skip


def epilogue_args(epi: Epilogue) -> list[ir.Constant]:
    """The run-time epilogue scalars of ``epi`` (types ``EPI_ARG_TYPES``)."""
    vals = (epi.y_zp, epi.qmin - epi.y_zp, epi.qmax - epi.y_zp, epi.r_zp, epi.r_mult,
            epi.f_lo or 0.0, epi.f_hi or 0.0)  # fmt: skip
    return [ir.Constant(t, int(v) if t == I32 else float(v)) for t, v in zip(EPI_ARG_TYPES, vals)]


def epilogue_values(b: ir.IRBuilder, key: Epilogue, args, n: int) -> EpiValues:
    """``EpiValues`` splatted to ``n`` lanes from the ``epilogue_args`` arguments."""
    v = [splat(b, a, n) for a in args]
    return EpiValues(v[0], v[1], v[2], v[3], v[4], None if key.f_lo is None else v[5],
                     None if key.f_hi is None else v[6])  # fmt: skip


def _num(ty: ir.Type, v) -> ir.Value:
    return v if isinstance(v, ir.Value) else _const(ty, v)


def emit_epilogue(
    b: ir.IRBuilder,
    module: ir.Module,
    epi: Epilogue,
    acc: ir.Value,
    bias: ir.Value,
    mult: ir.Value,
    fbias: ir.Value | None = None,
    res: ir.Value | None = None,
    values: EpiValues | None = None,
) -> ir.Value:
    """The output (``<n x i8>``/``<n x float>``, or scalar) for an i32 accumulator.

    ``acc`` is ``<n x i32>`` or ``i32``; ``bias`` (i32), ``mult`` (f32) and ``fbias`` have
    its shape (per-channel values broadcast or loaded); ``res`` is the i8 residual.
    ``values`` (run-time parameters of acc's shape) replace ``epi``'s numbers when given.
    A float32 ``acc`` is taken as ``f32(acc + bias)`` already (exact; ``bias`` unused).
    """
    fty, ity = _like(acc.type, F32), _like(acc.type, I32)
    float_acc = acc.type == fty  # already f32(acc + bias), exactly (caller's guarantee)
    if values is None:
        values = EpiValues(epi.y_zp, epi.qmin - epi.y_zp, epi.qmax - epi.y_zp, epi.r_zp,
                           epi.r_mult, epi.f_lo, epi.f_hi)  # fmt: skip
    t = b.fmul(acc if float_acc else b.sitofp(b.add(acc, bias), fty), mult)
    if epi.y_dtype == "f32":
        if fbias is not None:
            t = b.fadd(t, fbias)
        return _fclamp(b, t, values.f_lo, values.f_hi)
    if res is not None:
        wide = b.sext(res, ity) if epi.r_dtype == "i8" else b.zext(res, ity)
        r = b.sitofp(b.sub(wide, _num(ity, values.r_zp)), fty)
        t = b.fadd(t, b.fmul(r, _num(fty, values.r_mult)))
    suffix = f"v{fty.count}f32" if isinstance(fty, ir.VectorType) else "f32"
    rint = intrinsic(module, f"llvm.rint.{suffix}", fty, [fty])
    # clamp then round: equal to round then clamp (integer bounds), and lets x86 fuse the
    # rounding into the conversion (vcvtps2dq)
    t = b.call(rint, [_fclamp(b, t, values.q_lo, values.q_hi)])
    q = b.add(b.fptosi(t, ity), _num(ity, values.y_zp))
    return b.trunc(q, _like(acc.type, ir.IntType(8)))
