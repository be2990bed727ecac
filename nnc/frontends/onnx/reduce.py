"""ONNX reductions -> ``nn.reduce_mean`` / ``nn.reduce_sum`` / ``nn.reduce_max``.

``axes`` is an attribute before the op's input-axes opset (ReduceMean/ReduceMax: 18,
ReduceSum: 13) and an optional constant input from then on. No axes means all axes,
unless ``noop_with_empty_axes=1`` (then the node is an identity). ``keepdims`` defaults
to 1.
"""

from __future__ import annotations

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter
from nnc.frontends.onnx.shape_ops import axes_of
from nnc.ir.ops_shape import ReduceMaxOp, ReduceMeanOp, ReduceSumOp

#: op type -> (nn op, first opset taking axes as an input)
_REDUCTIONS = {
    "ReduceMean": (ReduceMeanOp, 18),
    "ReduceSum": (ReduceSumOp, 13),
    "ReduceMax": (ReduceMaxOp, 18),
}


@converter(*_REDUCTIONS)
def convert_reduce(node: NodeContext) -> list[Output]:
    """Reduce over ``axes`` with ``keepdims``."""
    op_class, input_opset = _REDUCTIONS[node.op_type]
    rank = node.spec(0).rank
    axes = axes_of(node, 1, input_opset)
    if not axes:
        if node.opset >= input_opset and int(node.attr("noop_with_empty_axes", 0)):
            return [node.input(0)]
        axes = tuple(range(rank))
    if any(not -rank <= a < rank for a in axes):
        raise node.error(f"axes {list(axes)} out of range for rank {rank}")
    axes = tuple(sorted(a % rank for a in axes))
    keepdims = int(node.attr("keepdims", 1))
    return [node.insert(op_class(node.input(0), axes=axes, keepdims=keepdims))]
