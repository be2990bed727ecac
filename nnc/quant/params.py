"""Quantization parameters: activation (scale, zero point) from a range, and weight
encodings (int8 per-tensor/per-channel symmetric; int8/int4 per-channel/per-group
symmetric or asymmetric, int4 packed; fp16; bf16).

Error bounds (elementwise, decoded weight vs float weight): int encodings <= scale/2 of
the element's channel/group (scales are max|w|/qmax, or (max-min)/(qmax-qmin) when
asymmetric, so nothing clips); fp16 <= 2**-11 relative (for |w| >= 2**-14);
bf16 <= 2**-8 relative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnc.ir import ops_quant as oq


@dataclass(frozen=True)
class ActParams:
    """Per-tensor activation quantization: value = scale * (q - zp), q of ``dtype``."""

    scale: float
    zp: int
    dtype: str


def act_params(lo: float, hi: float, symmetric: bool) -> ActParams:
    """u8 asymmetric (default) or s8 symmetric parameters covering [lo, hi] (and 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        scale = float(np.float32(max(-lo, hi) / 127)) or 1.0
        return ActParams(scale, 0, "i8")
    scale = float(np.float32((hi - lo) / 255)) or 1.0
    zp = int(np.clip(np.rint(-lo / scale), 0, 255))
    return ActParams(scale, zp, "u8")


def weight_scales_int8(w2d: np.ndarray, per_channel: bool) -> np.ndarray:
    """Symmetric int8 scales, one per row (equal when per-tensor), f32 (rows,)."""
    amax = np.abs(w2d.astype(np.float64)).max(axis=1) if w2d.size else np.zeros(len(w2d))
    if not per_channel:
        amax = np.full_like(amax, amax.max() if amax.size else 0.0)
    scale = (amax / 127).astype(np.float32)
    return np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)


def quantize_rows(
    w2d: np.ndarray, scale: np.ndarray, zp: np.ndarray, qmin: int, qmax: int, group_size: int = 0
):
    """``clamp(rint(w / scale) + zp)`` with per-row (rows, 1) or per-group scale/zp."""
    k = w2d.shape[1]
    idx = np.arange(k) // group_size if group_size else np.zeros(k, np.int64)
    q = np.rint(w2d.astype(np.float64) / scale[:, idx].astype(np.float64)) + zp[:, idx]
    return np.clip(q, qmin, qmax).astype(np.int32)


def group_params(
    w2d: np.ndarray, group_size: int, storage: str, symmetric: bool, per_tensor: bool = False
):
    """(scale f32 (N, G), zero point i32 (N, G), qmin, qmax) for rows of ``w2d``.

    ``group_size`` 0: one group per row (per-channel). Symmetric: qmin = -qmax (i8: -127).
    Asymmetric: the full range of ``storage`` with a zero point."""
    n, k = w2d.shape
    if per_tensor:
        scale, zp, qmin, qmax = group_params(w2d.reshape(1, -1), 0, storage, symmetric)
        return np.repeat(scale, n, axis=0), np.repeat(zp, n, axis=0), qmin, qmax
    gs = group_size or k
    g = math.ceil(k / gs)
    pad = g * gs - k
    wp = np.pad(w2d.astype(np.float64), ((0, 0), (0, pad)), mode="edge").reshape(n, g, gs)
    if symmetric:
        qmax = oq.qrange(storage)[1]
        scale = np.abs(wp).max(axis=2) / qmax
        zp = np.zeros((n, g), np.int32)
        qmin = -qmax
    else:
        qmin, qmax = oq.qrange(storage)
        lo = np.minimum(wp.min(axis=2), 0)
        hi = np.maximum(wp.max(axis=2), 0)
        scale = (hi - lo) / (qmax - qmin)
        scale = np.where(scale > 0, scale, 1.0)
        zp = np.clip(np.rint(qmin - lo / scale), qmin, qmax).astype(np.int32)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return scale, zp, qmin, qmax


def f16_scale_up(scale: np.ndarray) -> np.ndarray:
    """``scale`` rounded to float16, upwards (so |w| / scale never exceeds qmax)."""
    s16 = scale.astype(np.float16)
    low = s16.astype(np.float32) < scale
    s16 = np.where(low, np.nextafter(s16, np.float16(np.inf)), s16).astype(np.float16)
    tiny = np.float16(2**-24)
    return np.where(s16 > 0, s16, tiny).astype(np.float16)


def encode_weight(
    w2d: np.ndarray, storage: str, group_size: int, symmetric: bool, per_tensor: bool = False
):
    """(stored array, scale (N, G), zero point (N, G) or empty) for a wq op's weight."""
    n = w2d.shape[0]
    empty = (np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int32))
    if storage == "f16":
        return w2d.astype(np.float16), *empty
    if storage == "bf16":
        return oq.bf16_encode(w2d.astype(np.float32)), *empty
    symmetric = {"i4": True, "u4": False}.get(storage, symmetric)
    scale, zp, qmin, qmax = group_params(w2d, group_size, storage, symmetric, per_tensor)
    no_zp = np.zeros((0, 0), np.int32)
    if storage == "i8":
        q = quantize_rows(w2d, scale, zp, qmin, qmax, group_size)
        return q.astype(np.int8), scale, (no_zp if symmetric else zp)
    # int4: f16 scales (rounded up) and u8 zero points keep the overhead small
    if not symmetric:
        lo = -scale.astype(np.float64) * zp  # the range the f32 parameters covered
        scale16 = f16_scale_up(scale)
        zp = np.clip(np.rint(-lo / scale16.astype(np.float64)), qmin, qmax).astype(np.int32)
    else:
        scale16 = f16_scale_up(scale)
    q = quantize_rows(w2d, scale16.astype(np.float32), zp, qmin, qmax, group_size)
    assert q.shape[0] == n
    zp_store = zp.astype(np.uint8) if storage == "u4" else no_zp
    return oq.pack_int4(q), scale16, zp_store
