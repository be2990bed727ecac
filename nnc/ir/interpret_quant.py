"""Numpy reference semantics of the quantized ops (``nnc/ir/ops_quant.py``).

Integer accumulation is exact (int64 in numpy, checked to fit int32 semantics: the
contract's accumulators are int32 and models never come close to overflowing them);
every float step is float32 with one rounding per operation, in the order the contract
states, so kernels can match these results bit for bit. Importing this module registers
the implementations in ``nnc.ir.interpret``'s dispatch table.
"""

from __future__ import annotations

import numpy as np

from nnc.ir import interpret as _base
from nnc.ir import ops_quant as oq

F32 = np.float32


def quantize_array(
    x: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int, group_size: int, dtype: str
) -> np.ndarray:
    """``clamp(rint(f32(x) / s) + zp, qmin, qmax)`` with broadcast parameters."""
    qmin, qmax = oq.qrange(dtype)
    s = oq.expand_params(np.asarray(scale, F32), x.shape, axis, group_size)
    z = oq.expand_params(np.asarray(zp, np.int32), x.shape, axis, group_size).astype(F32)
    with np.errstate(all="ignore"):
        q = np.rint(x.astype(F32) / s) + z
    q = np.where(np.isnan(q), z, q)
    return np.clip(q, qmin, qmax).astype(np.dtype({"i8": np.int8, "u8": np.uint8}[dtype]))


def dequantize_array(
    q: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int, group_size: int
) -> np.ndarray:
    """``f32(q - zp) * s`` with broadcast parameters."""
    s = oq.expand_params(np.asarray(scale, F32), q.shape, axis, group_size)
    z = oq.expand_params(np.asarray(zp, np.int32), q.shape, axis, group_size)
    return ((q.astype(np.int64) - z).astype(F32) * s).astype(F32)


def requantize_output(
    acc: np.ndarray, mult: np.ndarray, lo: int, hi: int, y_zp: int, extra: np.ndarray | None
) -> np.ndarray:
    """``clamp(rint(f32(acc) * mult [+ extra]) + y_zp, lo, hi)`` in float32 (channel axis 1
    for rank-4 conv accumulators, last axis otherwise: ``mult`` is pre-shaped by callers)."""
    t = acc.astype(F32) * mult
    if extra is not None:
        t = t + extra
    y = np.rint(t) + F32(y_zp)
    return np.clip(y, lo, hi)


def _int_op_epilogue(op, acc: np.ndarray, mult_shape, residual) -> np.ndarray:
    p = op.props_dict()
    mult = oq.requant_multiplier(p["x_scale"], p["w_scale"].array, p["y_scale"])
    extra = None
    if residual is not None:
        r = (residual.astype(np.int64) - p["r_zp"]).astype(F32)
        extra = r * oq.residual_multiplier(p["r_scale"], p["y_scale"])
    lo, hi = oq.clamp_range(
        p["activation"], p["act_alpha"], p["act_beta"], p["y_scale"], p["y_zp"], p["out_dtype"]
    )
    y = requantize_output(acc, mult.reshape(mult_shape), lo, hi, p["y_zp"], extra)
    return y.astype({"i8": np.int8, "u8": np.uint8}[p["out_dtype"]])


def int_conv_acc(x_q: np.ndarray, x_zp: int, w_q: np.ndarray, op) -> np.ndarray:
    """Exact integer conv accumulator sum((x - x_zp) * w) (padding contributes 0), int64."""
    xs = x_q.astype(np.int64) - x_zp
    geometry = [op.prop(k) for k in ("strides", "pads", "dilations", "group")]
    # conv2d accumulates in float64: exact while |acc| < 2**53, far beyond int32.
    acc = _base.conv2d(xs, w_q.astype(np.int64), *geometry)
    return np.rint(acc).astype(np.int64)


def _split_extra(op, extra):
    it = iter(extra)
    bias = next(it) if op.operand_named("bias") is not None else None
    residual = next(it) if op.operand_named("residual") is not None else None
    return bias, residual


@_base._impl(oq.QuantizeOp)
def _quantize(op: oq.QuantizeOp, x) -> np.ndarray:
    p = op.props_dict()
    return quantize_array(
        x, p["scale"].array, p["zero_point"].array, p["axis"], p["group_size"], p["dtype"]
    )


@_base._impl(oq.DequantizeOp)
def _dequantize(op: oq.DequantizeOp, x) -> np.ndarray:
    p = op.props_dict()
    return dequantize_array(x, p["scale"].array, p["zero_point"].array, p["axis"], p["group_size"])


@_base._impl(oq.RequantizeOp)
def _requantize(op: oq.RequantizeOp, x) -> np.ndarray:
    p = op.props_dict()
    m = F32(p["x_scale"]) / F32(p["y_scale"])
    lo, hi = oq.qrange(p["dtype"])
    acc = x.astype(np.int64) - p["x_zp"]
    y = requantize_output(acc, m, lo, hi, p["y_zp"], None)
    return y.astype({"i8": np.int8, "u8": np.uint8}[p["dtype"]])


@_base._impl(oq.QGlobalAvgPoolOp)
def _qglobal_avg_pool(op: oq.QGlobalAvgPoolOp, x) -> np.ndarray:
    p = op.props_dict()
    axes = tuple(range(2, x.ndim))
    count = int(np.prod(x.shape[2:], dtype=np.int64))
    acc = (x.astype(np.int64) - p["x_zp"]).sum(axis=axes, keepdims=True)
    m = oq.qavg_multiplier(p["x_scale"], p["y_scale"], count)
    lo, hi = oq.qrange(p["dtype"])
    y = requantize_output(acc, m, lo, hi, p["y_zp"], None)
    return y.astype({"i8": np.int8, "u8": np.uint8}[p["dtype"]])


@_base._impl(oq.QConvOp)
def _qconv(op: oq.QConvOp, x, w, *extra) -> np.ndarray:
    bias, residual = _split_extra(op, extra)
    acc = int_conv_acc(x, op.prop("x_zp"), w, op)
    if bias is not None:
        acc = acc + bias.astype(np.int64).reshape(1, -1, 1, 1)
    return _int_op_epilogue(op, acc, (1, -1, 1, 1), residual)


@_base._impl(oq.QGemmOp)
def _qgemm(op: oq.QGemmOp, x, w, *extra) -> np.ndarray:
    bias, residual = _split_extra(op, extra)
    acc = (x.astype(np.int64) - op.prop("x_zp")) @ w.astype(np.int64).T
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return _int_op_epilogue(op, acc, (-1,), residual)


# -- weight-only / dynamic ----------------------------------------------------------------


def decode_weight_array(p: dict, w: np.ndarray) -> np.ndarray:
    """Decode a stored weight array given the op's properties (see the contract)."""
    storage, w_shape = p["storage"], tuple(p["w_shape"])
    n, k = oq.wq_rows(w_shape)
    if storage == "f16":
        return w.astype(F32).reshape(w_shape)
    if storage == "bf16":
        return oq.bf16_decode(w).reshape(w_shape)
    if storage in ("i4", "u4"):
        q = oq.unpack_int4(w, k, signed=storage == "i4")
    else:
        q = w.astype(np.int32)
    gs = p["group_size"]
    scale = p["scale"].array.astype(F32)
    zp = p["zero_point"].array.astype(np.int64)
    if zp.size == 0:  # symmetric
        zp = np.zeros(scale.shape, np.int64)
    if gs:
        idx = np.arange(k) // gs
        s, z = scale[:, idx], zp[:, idx]
    else:
        s, z = scale[:, :1], zp[:, :1]
    return ((q.astype(np.int64) - z).astype(F32) * s).astype(F32).reshape(w_shape)


def dynamic_quantize(x: np.ndarray) -> tuple[np.ndarray, np.float32, int]:
    """DynamicQuantizeLinear: (u8 tensor, scale, zero point)."""
    scale, zp = oq.dynamic_qparams(x)
    q = np.clip(np.rint(x.astype(F32) / scale) + F32(zp), 0, 255).astype(np.uint8)
    return q, scale, zp


def _wq_finish(op, y: np.ndarray, bias, residual, bias_shape) -> np.ndarray:
    """Float32 epilogue of the dynamic form: + bias, + residual, activation (in order)."""
    if bias is not None:
        y = y + bias.astype(F32).reshape(bias_shape)
    if residual is not None:
        y = y + residual.astype(F32)
    return _base.activation(
        y.astype(F32), op.prop("activation"), op.prop("act_alpha"), op.prop("act_beta")
    )


def _dyn_scale(op, a_scale: np.float32, shape) -> np.ndarray:
    return (a_scale * op.prop("scale").array.reshape(-1).astype(F32)).reshape(shape)


@_base._impl(oq.WQConvOp)
def _wq_conv(op: oq.WQConvOp, x, w, *extra) -> np.ndarray:
    p = op.props_dict()
    bias, residual = _split_extra(op, extra)
    conv_args = (p["strides"], p["pads"], p["dilations"], p["group"])
    if p["act_quant"] == "dynamic":
        xq, a_scale, a_zp = dynamic_quantize(x)
        acc = int_conv_acc(xq, a_zp, w.reshape(tuple(p["w_shape"])), op)
        y = acc.astype(F32) * _dyn_scale(op, a_scale, (1, -1, 1, 1))
        return _wq_finish(op, y, bias, residual, (1, -1, 1, 1))
    wf = decode_weight_array(p, w)
    y = _base.conv2d(x, wf, *conv_args)
    if bias is not None:
        y = y + bias.astype(np.float64).reshape(1, -1, 1, 1)
    if residual is not None:
        y = y + residual
    return _base.activation(y.astype(F32), p["activation"], p["act_alpha"], p["act_beta"])


@_base._impl(oq.WQGemmOp)
def _wq_gemm(op: oq.WQGemmOp, x, w, *extra) -> np.ndarray:
    p = op.props_dict()
    bias, residual = _split_extra(op, extra)
    if p["act_quant"] == "dynamic":
        xq, a_scale, a_zp = dynamic_quantize(x)
        acc = (xq.astype(np.int64) - a_zp) @ w.astype(np.int64).T
        y = acc.astype(F32) * _dyn_scale(op, a_scale, (-1,))
        return _wq_finish(op, y, bias, residual, (-1,))
    wf = decode_weight_array(p, w)
    y = x.astype(np.float64) @ wf.astype(np.float64).T
    if bias is not None:
        y = y + bias.astype(np.float64)
    if residual is not None:
        y = y + residual
    return _base.activation(y.astype(F32), p["activation"], p["act_alpha"], p["act_beta"])


# -- ONNX integer ops (imported models) ---------------------------------------------------


@_base._impl(oq.DynamicQuantizeOp)
def _dynamic_quantize(op: oq.DynamicQuantizeOp, x) -> list[np.ndarray]:
    q, scale, zp = dynamic_quantize(x)
    return [q, np.array(scale, F32), np.array(zp, np.uint8)]


@_base._impl(oq.MatMulIntegerOp)
def _matmul_integer(op: oq.MatMulIntegerOp, a, b, *zps) -> np.ndarray:
    it = iter(zps)
    a_zp = next(it) if op.operand_named("a_zp") is not None else np.zeros((), np.int64)
    b_zp = next(it) if op.operand_named("b_zp") is not None else np.zeros((), np.int64)
    a64 = a.astype(np.int64) - (a_zp.astype(np.int64).reshape(-1, 1) if a_zp.size > 1 else a_zp)
    b64 = b.astype(np.int64) - b_zp.astype(np.int64)
    return np.matmul(a64, b64).astype(np.int32)


@_base._impl(oq.ConvIntegerOp)
def _conv_integer(op: oq.ConvIntegerOp, x, w, *zps) -> np.ndarray:
    it = iter(zps)
    x_zp = int(next(it).reshape(())) if op.operand_named("x_zp") is not None else 0
    w64 = w.astype(np.int64)
    if op.operand_named("w_zp") is not None:
        w64 = w64 - next(it).astype(np.int64).reshape(-1, 1, 1, 1)
    return int_conv_acc(x, x_zp, w64, op).astype(np.int32)


@_base._impl(oq.IntToFloatOp)
def _int_to_float(op: oq.IntToFloatOp, x) -> np.ndarray:
    return x.astype(F32)
