"""Quantized nn ops: explicit (de/re)quantization, integer conv/gemm, weight-only forms.

This docstring and ``docs/quantization.md`` are THE numeric contract; native kernels must
match the interpreter (``nnc/ir/interpret_quant.py``) bit for bit. Derived constants are
computed by the helpers of this module (``requant_multiplier``, ``clamp_range``,
``residual_multiplier``, ``qrange``, ``expand_params``, ``pack_int4``/``unpack_int4``,
``bf16_encode``/``bf16_decode``, ``dynamic_qparams``); kernels call them instead of
re-deriving the numbers.

Notation: ``f32(v)`` rounds to float32, float arithmetic is IEEE float32 with one
rounding per operation and NO fused multiply-add; ``rint`` is round-half-to-even;
``clamp(v, lo, hi) = min(max(v, lo), hi)``. Integer ranges: i8 [-128, 127],
u8 [0, 255], i4 [-8, 7], u4 [0, 15].

``nn.quantize`` / ``nn.dequantize`` (scale f32 and zero_point i32 weights of equal shape:
per-tensor ``()``, per-channel ``(x.shape[axis],)``, per-group ``x.shape`` with
``ceil(x.shape[axis] / group_size)`` at ``axis``)::

    quantize:    q = clamp(rint(f32(x) / s) + zp, qmin, qmax)        (NaN -> zp)
    dequantize:  y = f32(q - zp) * s                                  (q - zp in int32)
    requantize:  y = clamp(rint(f32(q - x_zp) * m) + y_zp, qmin, qmax),
                 m = f32(x_scale) / f32(y_scale)                      (per-tensor)
    qglobal_avg_pool: acc = sum over the spatial dims of (q - x_zp)   (exact int32)
                 y = clamp(rint(f32(acc) * qavg_multiplier) + y_zp, qmin, qmax),
                 qavg_multiplier = f32(f32(x_scale) / f32(y_scale)) / f32(count)

``nn.qconv`` / ``nn.qgemm`` (x u8 or i8 with x_zp; w i8 symmetric, w_zp = 0; bias i32;
optional residual u8/i8 with r_scale/r_zp; output ``out_dtype`` i8/u8)::

    acc   = sum_k (x_q - x_zp) * w_q[m, k] + bias[m]        exact int32; conv padding adds 0
    mult  = requant_multiplier(x_scale, w_scale, y_scale)
          = (f32(x_scale) * f32(w_scale[m])) / f32(y_scale)
    t     = f32(acc) * mult[m]
    t     = t + f32(r_q - r_zp) * residual_multiplier(r_scale, y_scale)     (if residual)
    y_q   = clamp(rint(t) + y_zp, lo, hi),   (lo, hi) = clamp_range(...)

``clamp_range``: (qmin, qmax); relu: lo = max(qmin, y_zp); clip(alpha, beta):
lo/hi = clamp(y_zp + rint(f32(alpha|beta) / f32(y_scale)), qmin, qmax).
``nn.qgemm``: x ``(..., K)``, w ``(N, K)``, output ``(..., N)``.

``nn.wq_conv`` / ``nn.wq_gemm``: float activations, compressed weight operand
``(N, Kw)`` (one row per output channel; logical shape in ``w_shape``; conv rows are the
(c, kh, kw)-flattened filters), ``scale``/``zero_point`` ``(N, G)`` with
``G = ceil(K / group_size)`` (``group_size`` 0: per-channel, G = 1); scale is stored
f32 or f16 (int4 uses f16 to save space), zero_point i32 or u8, or empty (all zero:
symmetric). Decoded weight
``W[n, k] = f32(w[n, k] - zp[n, k // gs]) * f32(scale[n, k // gs])`` (i8, i4, u4; int4 is
packed two per byte, element k in byte k // 2, low nibble for even k), ``f32(w)`` for
f16, ``bitcast(w << 16)`` for bf16 (u16 storage). ``act_quant="none"``: exactly
nn.conv / nn.gemm with W. ``act_quant="dynamic"`` (i8, per-channel, symmetric):
x quantized per call as DynamicQuantizeLinear (``dynamic_qparams``), int32 accumulation
as above, ``y = act(f32(acc) * (a_scale * scale[n]) + bias[n] + residual)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec, nn_op
from nnc.ir.ops_compute import CONV_WINDOW_PROPS, ConvOp
from nnc.ir.weights import WeightAttr

#: Integer range of each quantized storage type.
QRANGES: dict[str, tuple[int, int]] = {
    "i8": (-128, 127),
    "u8": (0, 255),
    "i4": (-8, 7),
    "u4": (0, 15),
    "i32": (-(2**31), 2**31 - 1),
}
#: Weight storage kinds of nn.wq_conv / nn.wq_gemm.
WQ_STORAGE = ("i8", "i4", "u4", "f16", "bf16")
#: Fused activations the integer ops support (as a clamp of the quantized output).
INT_ACTIVATIONS = ("none", "relu", "clip")


def _plain_conv_props(p: dict[str, Any]) -> dict[str, Any]:
    """``nn.conv`` properties with ``p``'s window and no epilogue (for shape inference)."""
    conv_p = {k: p[k] for k in CONV_WINDOW_PROPS}
    conv_p.update(activation="none", act_alpha=0.0, act_beta=0.0)
    return conv_p


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def qrange(dtype: str) -> tuple[int, int]:
    """(qmin, qmax) of an integer storage type name."""
    return QRANGES[dtype]


def requant_multiplier(x_scale: float, w_scale: np.ndarray, y_scale: float) -> np.ndarray:
    """``(f32(x_scale) * f32(w_scale[m])) / f32(y_scale)`` in float32 (the contract)."""
    ws = np.asarray(w_scale, dtype=np.float32).reshape(-1)
    return (np.float32(x_scale) * ws) / np.float32(y_scale)


def residual_multiplier(r_scale: float, y_scale: float) -> np.float32:
    """``f32(r_scale) / f32(y_scale)``."""
    return np.float32(r_scale) / np.float32(y_scale)


def clamp_range(
    activation: str, alpha: float, beta: float, y_scale: float, y_zp: int, dtype: str
) -> tuple[int, int]:
    """The clamp (lo, hi) that implements a fused activation on the quantized output."""
    qmin, qmax = qrange(dtype)
    if activation == "none":
        return qmin, qmax
    if activation == "relu":
        return max(qmin, y_zp), qmax

    def bound(v: float) -> int:
        q = float(np.rint(np.float32(v) / np.float32(y_scale))) + y_zp
        return int(min(max(q, qmin), qmax))

    if activation == "clip":
        return bound(alpha), bound(beta)
    raise ValueError(f"integer ops cannot fuse activation '{activation}'")


def expand_params(
    param: np.ndarray, shape: tuple[int, ...], axis: int, group_size: int
) -> np.ndarray:
    """Broadcast a per-tensor / per-channel / per-group parameter against ``shape``."""
    param = np.asarray(param)
    if param.size == 1 and param.ndim <= 1:
        return param.reshape(())
    axis = axis % len(shape)
    if group_size > 0:
        rep = np.repeat(param, group_size, axis=axis)
        return np.take(rep, np.arange(shape[axis]), axis=axis)
    view = [1] * len(shape)
    view[axis] = -1
    return param.reshape(view)


def check_params(
    x: TensorSpec, scale: np.ndarray, zp: np.ndarray, axis: int, group_size: int
) -> None:
    """Raise ShapeError unless scale/zero_point fit ``x`` with this axis/group size."""
    _require(scale.shape == zp.shape, f"scale {scale.shape} and zero_point {zp.shape} differ")
    _require(scale.dtype == np.float32, "scale must be f32")
    _require(zp.dtype == np.int32, "zero_point must be i32")
    if scale.size == 1 and scale.ndim <= 1:
        return
    _require(-x.rank <= axis < x.rank, f"axis {axis} out of range for rank {x.rank}")
    ax = axis % x.rank
    if group_size > 0:
        want = list(x.shape)
        want[ax] = math.ceil(x.shape[ax] / group_size)
        _require(scale.shape == tuple(want), f"per-group scale {scale.shape} != {tuple(want)}")
    else:
        _require(
            scale.shape == (x.shape[ax],), f"per-channel scale {scale.shape} != ({x.shape[ax]},)"
        )


def pack_int4(values: np.ndarray) -> np.ndarray:
    """Pack int values in [-8, 15] (rows along the last axis) two per byte -> u8."""
    v = np.asarray(values).astype(np.int64) & 0xF
    if v.shape[-1] % 2:
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (1,), np.int64)], axis=-1)
    return (v[..., 0::2] | (v[..., 1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, k: int, signed: bool) -> np.ndarray:
    """Inverse of ``pack_int4``: the first ``k`` nibbles of each row, as int32."""
    p = np.asarray(packed).astype(np.int32)
    out = np.empty(p.shape[:-1] + (p.shape[-1] * 2,), np.int32)
    out[..., 0::2] = p & 0xF
    out[..., 1::2] = p >> 4
    out = out[..., :k]
    return np.where(out >= 8, out - 16, out) if signed else out


def bf16_encode(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits (u16), round to nearest even (NaN stays NaN)."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(x, np.float32))
    return np.where(nan, (bits >> 16) | 0x40, rounded).astype(np.uint16)


def bf16_decode(bits: np.ndarray) -> np.ndarray:
    """bf16 bits (u16) -> float32."""
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def dynamic_qparams(x: np.ndarray) -> tuple[np.float32, int]:
    """DynamicQuantizeLinear's (scale, zero point) of a float tensor (u8)."""
    lo = min(0.0, float(np.min(x))) if x.size else 0.0
    hi = max(0.0, float(np.max(x))) if x.size else 0.0
    scale = np.float32((np.float32(hi) - np.float32(lo)) / np.float32(255))
    if scale == 0:
        scale = np.float32(1)
    zp = int(np.clip(np.rint(np.float32(-lo) / scale), 0, 255))
    return scale, zp


def _weight_array(p: dict[str, Any], key: str) -> np.ndarray:
    value = p[key]
    return value.array if isinstance(value, WeightAttr) else np.asarray(value)


_QPARAM_PROPS = {
    "scale": ("weight", None),
    "zero_point": ("weight", None),
    "axis": ("int", 1),
    "group_size": ("int", 0),
}


@nn_op("nn.quantize", operands=("x",), props={**_QPARAM_PROPS, "dtype": ("str", "u8")})
class QuantizeOp(NNOp):
    """f32 -> i8/u8: ``clamp(rint(x / scale) + zero_point)`` (see module docstring)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        _require(x.dtype == "f32", f"quantize expects f32 input, got {x.dtype}")
        _require(p["dtype"] in ("i8", "u8"), f"quantize dtype {p['dtype']} not i8/u8")
        check_params(
            x, _weight_array(p, "scale"), _weight_array(p, "zero_point"), p["axis"], p["group_size"]
        )
        return [TensorSpec(x.shape, p["dtype"])]


@nn_op("nn.dequantize", operands=("x",), props=dict(_QPARAM_PROPS))
class DequantizeOp(NNOp):
    """i8/u8/i32 -> f32: ``f32(x - zero_point) * scale`` (see module docstring)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        _require(x.dtype in ("i8", "u8", "i32"), f"dequantize expects i8/u8/i32, got {x.dtype}")
        check_params(
            x, _weight_array(p, "scale"), _weight_array(p, "zero_point"), p["axis"], p["group_size"]
        )
        return [TensorSpec(x.shape, "f32")]


#: Per-tensor input -> output parameters of the int8 ops that only rescale
#: (``nn.requantize``, ``nn.qglobal_avg_pool``).
_RESCALE_PROPS = {
    "x_scale": ("float", None),
    "x_zp": ("int", 0),
    "y_scale": ("float", None),
    "y_zp": ("int", 0),
    "dtype": ("str", "u8"),
}


@nn_op(
    "nn.requantize",
    operands=("x",),
    props=_RESCALE_PROPS,
)
class RequantizeOp(NNOp):
    """i8/u8 -> i8/u8 with new per-tensor parameters (see module docstring)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        _require(x.dtype in ("i8", "u8"), f"requantize expects i8/u8, got {x.dtype}")
        _require(p["dtype"] in ("i8", "u8"), f"requantize dtype {p['dtype']} not i8/u8")
        return [TensorSpec(x.shape, p["dtype"])]


def qavg_multiplier(x_scale: float, y_scale: float, count: int) -> np.float32:
    """``f32(f32(x_scale) / f32(y_scale)) / f32(count)`` (``nn.qglobal_avg_pool``)."""
    return np.float32(np.float32(x_scale) / np.float32(y_scale)) / np.float32(count)


@nn_op(
    "nn.qglobal_avg_pool",
    operands=("x",),
    props=_RESCALE_PROPS,
)
class QGlobalAvgPoolOp(NNOp):
    """Integer GlobalAveragePool ``(N, C, *spatial) -> (N, C, 1, ...)`` (per-tensor)::

    acc = sum_spatial (x_q - x_zp)                     exact int32
    y_q = clamp(rint(f32(acc) * qavg_multiplier(x_scale, y_scale, count)) + y_zp, qmin, qmax)
    """

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        _require(x.dtype in ("i8", "u8"), f"qglobal_avg_pool expects i8/u8, got {x.dtype}")
        _require(p["dtype"] in ("i8", "u8"), f"qglobal_avg_pool dtype {p['dtype']} not i8/u8")
        _require(x.rank >= 3, f"qglobal_avg_pool expects (N, C, *spatial), got {x.shape}")
        _require(p["x_scale"] > 0 and p["y_scale"] > 0, "scales must be positive")
        return [TensorSpec(x.shape[:2] + (1,) * (x.rank - 2), p["dtype"])]


_INT_PROPS = {
    "x_scale": ("float", None),
    "x_zp": ("int", 0),
    "w_scale": ("weight", None),
    "y_scale": ("float", None),
    "y_zp": ("int", 0),
    "r_scale": ("float", 1.0),
    "r_zp": ("int", 0),
    "out_dtype": ("str", "u8"),
    "activation": ("str", "none"),
    "act_alpha": ("float", 0.0),
    "act_beta": ("float", 0.0),
}


def _check_int_op(x: TensorSpec, w: TensorSpec, out: TensorSpec, extra, p) -> None:
    m = w.shape[0]
    _require(x.dtype in ("i8", "u8"), f"integer op expects i8/u8 input, got {x.dtype}")
    _require(w.dtype == "i8", f"integer op expects i8 weights, got {w.dtype}")
    _require(p["out_dtype"] in ("i8", "u8"), f"out_dtype {p['out_dtype']} not i8/u8")
    _require(p["activation"] in INT_ACTIVATIONS, f"cannot fuse activation {p['activation']}")
    qmin, qmax = qrange(x.dtype)
    _require(qmin <= p["x_zp"] <= qmax, f"x_zp {p['x_zp']} out of {x.dtype} range")
    qmin, qmax = qrange(p["out_dtype"])
    _require(qmin <= p["y_zp"] <= qmax, f"y_zp {p['y_zp']} out of {p['out_dtype']} range")
    ws = _weight_array(p, "w_scale")
    _require(ws.dtype == np.float32 and ws.shape == (m,), f"w_scale must be f32 ({m},)")
    _require(p["x_scale"] > 0 and p["y_scale"] > 0, "scales must be positive")
    for e in extra:
        if e.shape == (m,):
            _require(e.dtype == "i32", f"bias must be i32, got {e.dtype}")
        else:
            _require(e.shape == out.shape, f"residual {e.shape} != output {out.shape}")
            _require(e.dtype in ("i8", "u8"), f"residual must be i8/u8, got {e.dtype}")


@nn_op(
    "nn.qconv",
    operands=("x", "w"),
    optional=("bias", "residual"),
    props={**CONV_WINDOW_PROPS, **_INT_PROPS},
)
class QConvOp(NNOp):
    """Integer 2-D convolution with int32 accumulation and fused requantization."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, w = ins[0], ins[1]
        conv_p = _plain_conv_props(p)
        shape = ConvOp.infer([TensorSpec(x.shape), TensorSpec(w.shape)], conv_p)[0].shape
        out = TensorSpec(shape, p["out_dtype"])
        _check_int_op(x, w, out, ins[2:], p)
        return [out]


@nn_op("nn.qgemm", operands=("x", "w"), optional=("bias", "residual"), props=dict(_INT_PROPS))
class QGemmOp(NNOp):
    """Integer ``x (..., K) @ w(N, K)^T`` with int32 accumulation and requantization."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, w = ins[0], ins[1]
        _require(x.rank >= 2 and w.rank == 2, f"qgemm expects x rank>=2, w (N, K): {w.shape}")
        _require(x.shape[-1] == w.shape[1], f"qgemm inner dims differ: {x.shape} vs {w.shape}")
        out = TensorSpec(x.shape[:-1] + (w.shape[0],), p["out_dtype"])
        _check_int_op(x, w, out, ins[2:], p)
        return [out]


_WQ_PROPS = {
    "w_shape": ("ints", None),
    "storage": ("str", "i8"),
    "scale": ("weight", np.zeros((0, 0), np.float32)),
    "zero_point": ("weight", np.zeros((0, 0), np.int32)),
    "group_size": ("int", 0),
    "act_quant": ("str", "none"),
    "activation": ("str", "none"),
    "act_alpha": ("float", 0.0),
    "act_beta": ("float", 0.0),
}


def wq_rows(w_shape: tuple[int, ...]) -> tuple[int, int]:
    """(N, K) of a weight-only op's logical weight shape (rows = output channels)."""
    return int(w_shape[0]), int(math.prod(w_shape[1:]))


def _check_wq(ins: list[TensorSpec], p: dict[str, Any]) -> None:
    storage, w = p["storage"], ins[1]
    _require(storage in WQ_STORAGE, f"storage {storage} not one of {WQ_STORAGE}")
    _require(ins[0].dtype == "f32", f"weight-only op expects f32 input, got {ins[0].dtype}")
    n, k = wq_rows(p["w_shape"])
    kw = (k + 1) // 2 if storage in ("i4", "u4") else k
    want_dtype = {"i8": "i8", "i4": "u8", "u4": "u8", "f16": "f16", "bf16": "u16"}[storage]
    _require(
        w.shape == (n, kw) and w.dtype == want_dtype,
        f"{storage} weight must be {want_dtype}({n}, {kw}), got {w.dtype}{w.shape}",
    )
    scale, zp = _weight_array(p, "scale"), _weight_array(p, "zero_point")
    if storage in ("f16", "bf16"):
        _require(scale.size == 0, f"{storage} storage takes no scale")
    else:
        gs = p["group_size"]
        g = 1 if gs == 0 else math.ceil(k / gs)
        _require(
            scale.shape == (n, g) and scale.dtype in (np.float32, np.float16),
            f"scale must be f32/f16 ({n}, {g}), got {scale.dtype}{scale.shape}",
        )
        _require(
            zp.size == 0 or (zp.shape == (n, g) and zp.dtype in (np.int32, np.uint8)),
            f"zero_point must be i32/u8 ({n}, {g}), got {zp.dtype}{zp.shape}",
        )
    _require(p["act_quant"] in ("none", "dynamic"), f"act_quant {p['act_quant']}")
    if p["act_quant"] == "dynamic":
        _require(storage == "i8" and p["group_size"] == 0, "dynamic needs i8 per-channel weights")
        _require(scale.dtype == np.float32, "dynamic needs f32 weight scales")
        _require(not zp.any(), "dynamic needs symmetric weights")
    for e in ins[2:]:
        _require(e.dtype == "f32", f"bias/residual must be f32, got {e.dtype}")


@nn_op(
    "nn.wq_conv",
    operands=("x", "w"),
    optional=("bias", "residual"),
    props={**CONV_WINDOW_PROPS, **_WQ_PROPS},
)
class WQConvOp(NNOp):
    """Convolution over float activations with compressed weights (weight-only/dynamic)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        _check_wq(ins, p)
        _require(len(p["w_shape"]) == 4, f"wq_conv w_shape {p['w_shape']} not rank 4")
        conv_p = _plain_conv_props(p)
        specs = [ins[0], TensorSpec(tuple(p["w_shape"])), *ins[2:]]
        return ConvOp.infer(specs, conv_p)


@nn_op("nn.wq_gemm", operands=("x", "w"), optional=("bias", "residual"), props=dict(_WQ_PROPS))
class WQGemmOp(NNOp):
    """``x (..., K) @ W(N, K)^T`` over float activations with compressed weights."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        _check_wq(ins, p)
        x = ins[0]
        _require(len(p["w_shape"]) == 2, f"wq_gemm w_shape {p['w_shape']} not rank 2")
        n, k = p["w_shape"]
        _require(x.rank >= 2 and x.shape[-1] == k, f"wq_gemm x {x.shape} vs K={k}")
        out = TensorSpec(x.shape[:-1] + (n,), "f32")
        for e in ins[2:]:
            _require(e.shape in ((n,), out.shape), f"wq_gemm epilogue operand {e.shape}")
        return [out]


@nn_op("nn.dynamic_quantize", operands=("x",), num_results=3)
class DynamicQuantizeOp(NNOp):
    """ONNX DynamicQuantizeLinear: (u8 tensor, f32 scalar scale, u8 scalar zero point),
    parameters from ``dynamic_qparams`` (min/max of x and 0), then quantize."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        _require(ins[0].dtype == "f32", f"dynamic_quantize expects f32, got {ins[0].dtype}")
        return [TensorSpec(ins[0].shape, "u8"), TensorSpec((), "f32"), TensorSpec((), "u8")]


def _zp_ok(zp: TensorSpec, like: TensorSpec, what: str) -> None:
    _require(zp.dtype == like.dtype, f"{what} zero point dtype {zp.dtype} != {like.dtype}")
    _require(zp.rank <= 1, f"{what} zero point must be a scalar or a vector, got {zp.shape}")


@nn_op("nn.matmul_integer", operands=("a", "b"), optional=("a_zp", "b_zp"))
class MatMulIntegerOp(NNOp):
    """ONNX MatMulInteger: ``(a - a_zp) @ (b - b_zp)`` exact in int32 (numpy matmul
    broadcasting; a_zp scalar or per row of a, b_zp scalar or per column of b)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        from nnc.ir.ops_compute import MatMulOp

        a, b = ins[0], ins[1]
        _require(a.dtype in ("i8", "u8") and b.dtype in ("i8", "u8"), "matmul_integer: i8/u8")
        out = MatMulOp.infer([TensorSpec(a.shape), TensorSpec(b.shape)], {})[0]
        return [TensorSpec(out.shape, "i32")]


@nn_op(
    "nn.conv_integer",
    operands=("x", "w"),
    optional=("x_zp", "w_zp"),
    props=dict(CONV_WINDOW_PROPS),
)
class ConvIntegerOp(NNOp):
    """ONNX ConvInteger: ``conv(x - x_zp, w - w_zp)`` exact in int32 (padding is x_zp,
    i.e. contributes 0; x_zp scalar; w_zp scalar or per output channel)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, w = ins[0], ins[1]
        _require(x.dtype in ("i8", "u8") and w.dtype in ("i8", "u8"), "conv_integer: i8/u8")
        conv_p = _plain_conv_props(p)
        out = ConvOp.infer([TensorSpec(x.shape), TensorSpec(w.shape)], conv_p)[0]
        return [TensorSpec(out.shape, "i32")]


@nn_op("nn.int_to_float", operands=("x",))
class IntToFloatOp(NNOp):
    """Convert integers (i32/i8/u8) to float32, rounding to nearest even (ONNX Cast)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        _require(ins[0].dtype in ("i32", "i8", "u8"), f"int_to_float of {ins[0].dtype}")
        return [TensorSpec(ins[0].shape, "f32")]


QUANT_OPS = [
    QuantizeOp,
    DequantizeOp,
    RequantizeOp,
    QGlobalAvgPoolOp,
    QConvOp,
    QGemmOp,
    WQConvOp,
    WQGemmOp,
    DynamicQuantizeOp,
    MatMulIntegerOp,
    ConvIntegerOp,
    IntToFloatOp,
]

__all__ = [
    "QUANT_OPS",
    "ConvIntegerOp",
    "DequantizeOp",
    "DynamicQuantizeOp",
    "IntToFloatOp",
    "MatMulIntegerOp",
    "QConvOp",
    "QGemmOp",
    "QGlobalAvgPoolOp",
    "QuantizeOp",
    "RequantizeOp",
    "WQConvOp",
    "WQGemmOp",
]
