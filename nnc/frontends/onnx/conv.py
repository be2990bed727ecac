"""ONNX Conv -> ``nn.conv`` (2-D; 1-D lifted to 2-D with a unit height).

Bias is the conv's optional epilogue operand. ``kernel_shape``, when given, must match
the weight's spatial dims. Transposed and 3-D convolutions raise UnsupportedOpError.
"""

from __future__ import annotations

from xdsl.ir import SSAValue

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter
from nnc.frontends.onnx.spatial import lift_1d, lower_1d, window
from nnc.ir.ops_compute import ConvOp


def _weight(node: NodeContext, lifted: bool) -> SSAValue:
    if not lifted:
        return node.input(1)
    m, cg, k = node.spec(1).shape
    known = node.known(1)
    if known is not None:
        return node.constant(known.reshape(m, cg, 1, k))
    return node.reshape(node.input(1), (m, cg, 1, k))


@converter("Conv")
def convert_conv(node: NodeContext) -> list[Output]:
    """Conv(X, W, B?) with group, strides, pads, dilations, auto_pad."""
    xs, ws = node.spec(0), node.spec(1)
    kernel = node.ints("kernel_shape", ws.shape[2:])
    if kernel != ws.shape[2:]:
        raise node.bad_attr("kernel_shape", list(kernel), f"weight has shape {ws.shape}")
    win = window(node, kernel, xs.shape[2:])
    if xs.rank != ws.rank:
        raise node.error(f"input rank {xs.rank} differs from weight rank {ws.rank}")
    group = int(node.attr("group", 1))
    x = lift_1d(node, node.input(0)) if win.lifted else node.input(0)
    bias = node.input(2) if node.has_input(2) else None
    y = node.insert(
        ConvOp(
            x,
            _weight(node, win.lifted),
            bias,
            None,
            strides=win.strides,
            pads=win.pads,
            dilations=win.dilations,
            group=group,
        )
    )
    return [lower_1d(node, y) if win.lifted else y]
