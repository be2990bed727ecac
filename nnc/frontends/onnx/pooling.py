"""ONNX pooling -> ``nn.max_pool`` / ``nn.avg_pool`` / ``nn.global_*_pool``.

MaxPool: kernel, strides, pads, dilations, ceil_mode, auto_pad; ``storage_order`` only
affects the Indices output, which is unsupported (an error if anything uses it).
AveragePool: count_include_pad, ceil_mode, auto_pad; dilations other than 1 (opset 19)
are unsupported. 1-D pools are lifted to 2-D; 3-D pools raise UnsupportedOpError.
"""

from __future__ import annotations

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter
from nnc.frontends.onnx.spatial import lift_1d, lower_1d, window
from nnc.ir.ops_compute import AvgPoolOp, GlobalAvgPoolOp, GlobalMaxPoolOp, MaxPoolOp


def _kernel(node: NodeContext) -> tuple[int, ...]:
    kernel = node.ints("kernel_shape")
    if not kernel or min(kernel) < 1:
        raise node.bad_attr("kernel_shape", kernel, "a positive kernel shape is required")
    return kernel


def _ceil_mode(node: NodeContext) -> int:
    ceil_mode = int(node.attr("ceil_mode", 0))
    if ceil_mode not in (0, 1):
        raise node.bad_attr("ceil_mode", ceil_mode, "expected 0 or 1")
    return ceil_mode


@converter("MaxPool")
def convert_max_pool(node: NodeContext) -> list[Output]:
    """MaxPool(X) -> Y (the Indices output is not supported)."""
    xs = node.spec(0)
    win = window(node, _kernel(node), xs.shape[2:])
    x = lift_1d(node, node.input(0)) if win.lifted else node.input(0)
    y = node.insert(
        MaxPoolOp(
            x,
            kernel=win.kernel,
            strides=win.strides,
            pads=win.pads,
            dilations=win.dilations,
            ceil_mode=_ceil_mode(node),
        )
    )
    return [lower_1d(node, y) if win.lifted else y]


@converter("AveragePool")
def convert_avg_pool(node: NodeContext) -> list[Output]:
    """AveragePool(X) -> Y."""
    xs = node.spec(0)
    win = window(node, _kernel(node), xs.shape[2:])
    if win.dilations != (1, 1):
        raise node.bad_attr(
            "dilations", list(node.ints("dilations")), "dilated average pooling is not supported"
        )
    include_pad = int(node.attr("count_include_pad", 0))
    x = lift_1d(node, node.input(0)) if win.lifted else node.input(0)
    y = node.insert(
        AvgPoolOp(
            x,
            kernel=win.kernel,
            strides=win.strides,
            pads=win.pads,
            ceil_mode=_ceil_mode(node),
            count_include_pad=include_pad,
        )
    )
    return [lower_1d(node, y) if win.lifted else y]


@converter("GlobalAveragePool")
def convert_global_avg_pool(node: NodeContext) -> list[Output]:
    """Mean over all spatial dims (kept as size 1)."""
    return [node.insert(GlobalAvgPoolOp(node.input(0)))]


@converter("GlobalMaxPool")
def convert_global_max_pool(node: NodeContext) -> list[Output]:
    """Max over all spatial dims (kept as size 1)."""
    return [node.insert(GlobalMaxPoolOp(node.input(0)))]
