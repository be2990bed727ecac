"""ONNX Softmax / LogSoftmax -> ``nn.softmax`` / ``nn.log_softmax``.

Opset >= 13: normalize along the single ``axis`` (default -1).
Opset < 13: the input is coerced to 2-D at ``axis`` (default 1) and normalized over the
whole trailing block ``x.shape[axis:]``; this becomes reshape -> softmax(axis=-1) ->
reshape back (no reshapes when ``axis`` is the last dimension).
"""

from __future__ import annotations

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter
from nnc.ir.ops_shape import LogSoftmaxOp, SoftmaxOp
from nnc.ir.shape_rules import product
from nnc.ir.types import DYNAMIC

_OPS = {"Softmax": SoftmaxOp, "LogSoftmax": LogSoftmaxOp}


def _axis(node: NodeContext, default: int) -> int:
    rank = node.spec(0).rank
    axis = int(node.attr("axis", default))
    if not -rank <= axis < rank:
        raise node.bad_attr("axis", axis, f"out of range for rank {rank}")
    return axis % rank


@converter(*_OPS, opsets=(13, 21))
def convert_softmax(node: NodeContext) -> list[Output]:
    """Softmax along one axis."""
    return [node.insert(_OPS[node.op_type](node.input(0), axis=_axis(node, -1)))]


@converter(*_OPS, opsets=(9, 12))
def convert_softmax_2d(node: NodeContext) -> list[Output]:
    """Softmax over the flattened block of dims [axis, rank)."""
    shape = node.spec(0).shape
    axis = _axis(node, 1)
    op_class = _OPS[node.op_type]
    if axis == len(shape) - 1:
        return [node.insert(op_class(node.input(0), axis=-1))]
    block = product(shape[axis:])
    if block == DYNAMIC:
        raise node.error(f"dims {axis}.. of input shape must be static for opset < 13 semantics")
    flat = node.reshape(node.input(0), (product(shape[:axis]), block))
    y = node.insert(op_class(flat, axis=-1))
    return [node.reshape(y, shape)]
