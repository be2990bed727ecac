"""Already-quantized ONNX models: QDQ (QuantizeLinear/DequantizeLinear) and QOperator
(QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, DynamicQuantizeLinear).

* QuantizeLinear / DequantizeLinear -> ``nn.quantize`` / ``nn.dequantize`` (per-tensor,
  per-axis, blocked with ``block_size``); on compile-time-known data (weights, int32
  biases) they are folded, so QDQ weights become float constants exactly equal to
  ``(q - zp) * scale``; the ``fuse-qdq`` pass later turns dequantize -> conv/gemm ->
  quantize back into integer ops.
* QLinearConv / QLinearMatMul -> ``nn.qconv`` / ``nn.qgemm`` (constant int8 weights with
  zero point 0, constant scales and zero points).
* DynamicQuantizeLinear -> ``nn.dynamic_quantize``; ConvInteger / MatMulInteger ->
  ``nn.conv_integer`` / ``nn.matmul_integer`` (int32 results; ``Cast`` to float then works
  through ``nn.int_to_float``).

Anything else (uint8 weights with zero points in the QLinear ops, saturate=0 float8...)
raises UnsupportedOpError naming the node.
"""

from __future__ import annotations

import numpy as np

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter, folder
from nnc.frontends.onnx.spatial import window
from nnc.ir.interpret_quant import dequantize_array, quantize_array
from nnc.ir.ops_quant import (
    ConvIntegerOp,
    DequantizeOp,
    DynamicQuantizeOp,
    MatMulIntegerOp,
    QConvOp,
    QGemmOp,
    QuantizeOp,
)
from nnc.ir.types import dtype_of_numpy

_QDTYPES = {np.dtype(np.uint8): "u8", np.dtype(np.int8): "i8"}


def _qparams(node: NodeContext, scale_i: int, zp_i: int, x_rank: int):
    """(scale f32, zero point i32, out dtype name, axis, block size) of a Q/DQ node."""
    scale = np.asarray(node.const(scale_i, "scale"), np.float32)
    if node.has_input(zp_i):
        zp_arr = node.const(zp_i, "zero_point")
        dtype = _QDTYPES.get(zp_arr.dtype, dtype_of_numpy(zp_arr.dtype))
        zp = zp_arr.astype(np.int32)
    else:
        dtype, zp = "u8", np.zeros(scale.shape, np.int32)
    if scale.size == 1:
        scale, zp = scale.reshape(()), zp.reshape(())
    axis = int(node.attr("axis", 1))
    block = int(node.attr("block_size", 0))
    if axis < 0:
        axis += x_rank
    if int(node.attr("saturate", 1)) != 1:
        raise node.bad_attr("saturate", 0, "only saturating integer quantization is supported")
    return scale, zp, dtype, axis, block


@folder("QuantizeLinear", opsets=(10, 21))
def fold_quantize(node: NodeContext, x, scale, zp=None) -> list[np.ndarray]:
    s, z, dtype, axis, block = _qparams(node, 1, 2, x.ndim)
    if dtype not in ("u8", "i8"):
        raise node.error(f"quantizing to {dtype} is not supported (uint8/int8 only)")
    return [quantize_array(x.astype(np.float32), s, z, axis, block, dtype)]


@converter("QuantizeLinear", opsets=(10, 21))
def convert_quantize(node: NodeContext) -> list[Output]:
    s, z, dtype, axis, block = _qparams(node, 1, 2, node.spec(0).rank)
    if dtype not in ("u8", "i8"):
        raise node.error(f"quantizing to {dtype} is not supported (uint8/int8 only)")
    op = QuantizeOp(node.input(0), scale=s, zero_point=z, axis=axis, group_size=block, dtype=dtype)
    return [node.insert(op)]


@folder("DequantizeLinear", opsets=(10, 21))
def fold_dequantize(node: NodeContext, x, scale, zp=None) -> list[np.ndarray]:
    s, z, _, axis, block = _qparams(node, 1, 2, x.ndim)
    return [dequantize_array(x, s, z, axis, block)]


@converter("DequantizeLinear", opsets=(10, 21))
def convert_dequantize(node: NodeContext) -> list[Output]:
    s, z, _, axis, block = _qparams(node, 1, 2, node.spec(0).rank)
    if node.spec(0).dtype not in ("u8", "i8", "i32"):
        raise node.error(f"dequantizing {node.spec(0).dtype} is not supported")
    return [
        node.insert(DequantizeOp(node.input(0), scale=s, zero_point=z, axis=axis, group_size=block))
    ]


def _scalar(node: NodeContext, i: int, what: str, cast=float):
    arr = node.const(i, what)
    if arr.size != 1:
        raise node.error(f"input '{what}' must be a scalar (per-tensor), got shape {arr.shape}")
    return cast(arr.reshape(()))


def _int8_weight(node: NodeContext, w_i: int, zp_i: int) -> np.ndarray:
    w = node.const(w_i, "w")
    zp = node.const(zp_i, "w_zero_point") if node.has_input(zp_i) else np.zeros(1)
    if w.dtype != np.int8 or np.any(zp != 0):
        raise node.error(
            "only int8 weights with zero point 0 are supported (symmetric, as the integer "
            f"kernels use); got {w.dtype} with zero points {np.unique(zp)[:4]}"
        )
    return w


@converter("QLinearConv")
def convert_qlinear_conv(node: NodeContext) -> list[Output]:
    """QLinearConv(x, x_s, x_zp, w, w_s, w_zp, y_s, y_zp, B?) -> nn.qconv."""
    w = _int8_weight(node, 3, 5)
    xs = node.spec(0)
    if xs.rank != 4:
        raise node.error("only 2-D QLinearConv is supported")
    win = window(node, node.ints("kernel_shape", w.shape[2:]), xs.shape[2:])
    w_scale = np.broadcast_to(
        np.asarray(node.const(4, "w_scale"), np.float32).reshape(-1), (w.shape[0],)
    )
    y_zp_arr = node.const(7, "y_zero_point") if node.has_input(7) else np.zeros((), np.uint8)
    bias = None
    if node.has_input(8):
        bias = node.constant(np.asarray(node.const(8, "B"), np.int32))
    op = QConvOp(
        node.input(0),
        node.constant(w),
        bias,
        None,
        strides=win.strides,
        pads=win.pads,
        dilations=win.dilations,
        group=int(node.attr("group", 1)),
        x_scale=_scalar(node, 1, "x_scale"),
        x_zp=_scalar(node, 2, "x_zero_point", int),
        w_scale=np.ascontiguousarray(w_scale),
        y_scale=_scalar(node, 6, "y_scale"),
        y_zp=int(y_zp_arr.reshape(())),
        out_dtype=_QDTYPES[np.dtype(y_zp_arr.dtype)],
    )
    return [node.insert(op)]


@converter("QLinearMatMul")
def convert_qlinear_matmul(node: NodeContext) -> list[Output]:
    """QLinearMatMul(a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp) with constant rank-2 b."""
    b = _int8_weight(node, 3, 5)
    if b.ndim != 2:
        raise node.error("only a constant rank-2 right operand is supported")
    n = b.shape[1]
    b_scale = np.broadcast_to(np.asarray(node.const(4, "b_scale"), np.float32).reshape(-1), (n,))
    y_zp_arr = node.const(7, "y_zero_point")
    op = QGemmOp(
        node.input(0),
        node.constant(np.ascontiguousarray(b.T)),
        None,
        None,
        x_scale=_scalar(node, 1, "a_scale"),
        x_zp=_scalar(node, 2, "a_zero_point", int),
        w_scale=np.ascontiguousarray(b_scale),
        y_scale=_scalar(node, 6, "y_scale"),
        y_zp=int(y_zp_arr.reshape(())),
        out_dtype=_QDTYPES[np.dtype(y_zp_arr.dtype)],
    )
    return [node.insert(op)]


@converter("DynamicQuantizeLinear", opsets=(11, 21))
def convert_dynamic_quantize(node: NodeContext) -> list[Output]:
    """DynamicQuantizeLinear(x) -> (y u8, y_scale f32 scalar, y_zero_point u8 scalar)."""
    results = node.graph.builder.insert_multi(DynamicQuantizeOp(node.input(0)))
    return list(results)


def _zp_operand(node: NodeContext, i: int):
    return node.input(i) if node.has_input(i) else None


@converter("MatMulInteger")
def convert_matmul_integer(node: NodeContext) -> list[Output]:
    """MatMulInteger(A, B, a_zp?, b_zp?) -> nn.matmul_integer (int32)."""
    a_zp, b_zp = _zp_operand(node, 2), _zp_operand(node, 3)
    op = MatMulIntegerOp(node.input(0), node.input(1), a_zp, b_zp)
    return [node.insert(op)]


@converter("ConvInteger")
def convert_conv_integer(node: NodeContext) -> list[Output]:
    """ConvInteger(x, w, x_zp?, w_zp?) -> nn.conv_integer (int32)."""
    xs, ws = node.spec(0), node.spec(1)
    if xs.rank != 4:
        raise node.error("only 2-D ConvInteger is supported")
    win = window(node, node.ints("kernel_shape", ws.shape[2:]), xs.shape[2:])
    op = ConvIntegerOp(
        node.input(0),
        node.input(1),
        _zp_operand(node, 2),
        _zp_operand(node, 3),
        strides=win.strides,
        pads=win.pads,
        dilations=win.dilations,
        group=int(node.attr("group", 1)),
    )
    return [node.insert(op)]
