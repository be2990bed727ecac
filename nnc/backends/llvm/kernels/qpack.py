"""Compile-time side of the int8 kernels: activation domain, zero-point/bias folding,
per-channel constants, weight packing and the globals that hold them.

The math is ``requant.py``'s contract; the layouts are the ones ``qgemm``'s micro-kernel
reads (B panel ``[k / g][columns][g]``, A rows padded to a multiple of ``g``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from nnc.backends.llvm.codegen import RawBytes
from nnc.backends.llvm.kernels.qisa import QIsa
from nnc.backends.llvm.kernels.requant import (
    Epilogue,
    dequant_multiplier,
    quant_range,
    requant_multiplier,
    residual_multiplier,
)
from nnc.backends.llvm.loops import F32, I32


def as_array(value) -> np.ndarray:
    """A numpy array from an array, a weight attribute (``.array``), a scalar or a tuple."""
    return np.asarray(getattr(value, "array", value))


def ceil_to(a: int, b: int) -> int:
    """``a`` rounded up to a multiple of ``b``."""
    return -(-a // b) * b


# -- activation domain and compile-time folding ------------------------------------------


@dataclass(frozen=True)
class ActDomain:
    """How activation bytes are stored for ``isa``: ``flip`` xors 0x80 into each byte,
    ``zp`` is the zero point in that domain, ``signed`` the signedness of stored bytes."""

    flip: bool
    zp: int
    signed: bool

    @staticmethod
    def of(isa: QIsa, x_dtype: str, x_zp: int) -> ActDomain:
        if x_dtype not in ("u8", "i8"):
            raise ValueError(f"int8 kernels take u8/i8 activations, got {x_dtype}")
        signed = x_dtype == "i8"
        if isa.act_domain == "u8" and signed:
            return ActDomain(True, int(x_zp) + 128, False)
        if isa.act_domain == "s8" and not signed:
            return ActDomain(True, int(x_zp) - 128, True)
        return ActDomain(False, int(x_zp), signed)


def fold_bias(w2d: np.ndarray, bias, zp: int) -> np.ndarray:
    """``bias_i32 - zp * rowsum(w)`` per output channel (rows of ``w2d``), as int32."""
    folded = -int(zp) * w2d.astype(np.int64).sum(axis=1)
    if bias is not None:
        folded = folded + as_array(bias).astype(np.int64).reshape(-1)
    if folded.size and (folded.min() < -(2**31) or folded.max() >= 2**31):
        raise ValueError("folded int32 bias overflows")
    return folded.astype(np.int32)


@dataclass(frozen=True)
class Params:
    """Per-channel epilogue constants: folded i32 bias, f32 multiplier, optional f32 bias."""

    bias: np.ndarray
    mult: np.ndarray
    fbias: np.ndarray | None
    epi: Epilogue


def make_params(
    w2d, bias, dom: ActDomain, *, w_scale, x_scale, y_dtype, y_scale, y_zp,
    activation, act_alpha, act_beta, r_scale, r_zp, r_dtype,
) -> Params:  # fmt: skip
    """Fold zero point and bias, compute multipliers and the static epilogue (see requant)."""
    m = w2d.shape[0]
    ws = np.broadcast_to(as_array(w_scale).astype(np.float32).reshape(-1), (m,))
    bias_a = None if bias is None else as_array(bias)
    if y_dtype == "f32":
        if r_dtype is not None:
            raise ValueError("residual add needs a quantized output")
        float_bias = bias_a is not None and bias_a.dtype.kind == "f"
        ibias = fold_bias(w2d, None if float_bias else bias_a, dom.zp)
        fb = bias_a.astype(np.float32).reshape(-1) if float_bias else None
        lo, hi = {"none": (None, None), "relu": (0.0, None)}.get(
            activation, (float(act_alpha), float(act_beta))
        )
        if activation not in ("none", "relu", "clip"):
            raise ValueError(f"int8 kernels fuse relu/clip only, got {activation!r}")
        epi = Epilogue("f32", f_lo=lo, f_hi=hi, f_bias=fb is not None)
        return Params(ibias, dequant_multiplier(x_scale, ws), fb, epi)
    if bias_a is not None and bias_a.dtype.kind == "f":
        raise ValueError("quantized output needs an int32 bias")
    qmin, qmax = quant_range(y_dtype, y_scale, y_zp, activation, act_alpha, act_beta)
    r_mult = 0.0 if r_dtype is None else residual_multiplier(r_scale, y_scale)
    epi = Epilogue(y_dtype, int(y_zp), qmin, qmax, r_dtype, int(r_zp), r_mult)
    return Params(fold_bias(w2d, bias_a, dom.zp), requant_multiplier(x_scale, ws, y_scale), None,
                  epi)  # fmt: skip


def pack_panel(mat_kn: np.ndarray, g: int, ncols: int) -> np.ndarray:
    """``[K, N]`` int8 -> panel ``[ceil(K/g)][ncols][g]`` (zero padded), flat bytes."""
    k, n = mat_kn.shape
    kp = ceil_to(max(k, 1), g)
    full = np.zeros((kp, ncols), dtype=np.int8)
    full[:k, :n] = mat_kn
    return np.ascontiguousarray(full.reshape(kp // g, g, ncols).transpose(0, 2, 1)).reshape(-1)


def pad_rows(mat: np.ndarray, kp: int) -> np.ndarray:
    """``[M, K]`` -> ``[M, kp]`` with zero columns appended, flat bytes."""
    out = np.zeros((mat.shape[0], kp), dtype=mat.dtype)
    out[:, : mat.shape[1]] = mat
    return out.reshape(-1)


def const_global(module: ir.Module, name: str, arr: np.ndarray) -> ir.GlobalVariable:
    """A private, 64-byte aligned constant holding ``arr``'s little-endian bytes."""
    data = np.ascontiguousarray(arr)
    data = data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes() or b"\0"
    init = RawBytes(data)  # hex-formatted by numpy: fast for megabytes of weights
    g = ir.GlobalVariable(module, init.type, name)
    g.initializer = init
    g.global_constant, g.linkage, g.unnamed_addr, g.align = True, "private", True, 64
    return g


def null(ty: ir.Type) -> ir.Constant:
    """A null pointer of pointer type ``ty``."""
    return ir.Constant(ty, None)


def param_globals(b, module, name, params: Params, pad_to: int):
    """Globals for the per-channel arrays (padded to ``pad_to`` entries); i32*/f32* values."""

    def padded(arr, dtype):
        out = np.zeros(max(pad_to, arr.size), dtype=dtype)
        out[: arr.size] = arr
        return out

    f32p = F32.as_pointer()
    bias = b.bitcast(const_global(module, f"{name}.bias", padded(params.bias, np.int32)),
                     I32.as_pointer())  # fmt: skip
    mult = b.bitcast(const_global(module, f"{name}.mult", padded(params.mult, np.float32)), f32p)
    fbias = null(f32p)
    if params.fbias is not None:
        fbias = b.bitcast(
            const_global(module, f"{name}.fbias", padded(params.fbias, np.float32)), f32p
        )
    return bias, mult, fbias
