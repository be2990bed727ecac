"""Window attributes shared by Conv and the pools: kernel/strides/pads/dilations/auto_pad.

nn's conv and pool ops are 2-D (NCHW). ONNX 1-D windows (rank-3 tensors) are lifted to
2-D by inserting a unit height: ``(N, C, L) -> (N, C, 1, L)`` with kernel ``(1, K)``; the
result is reshaped back. Windows over 3 or more spatial dims raise UnsupportedOpError.

``auto_pad`` follows the ONNX spec: ``SAME_UPPER``/``SAME_LOWER`` pad so that
``out = ceil(in / stride)``, the odd extra pad at the end (UPPER) or the start (LOWER);
``VALID`` means no padding; ``NOTSET`` uses the explicit ``pads``.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.ir import SSAValue

from nnc.frontends.onnx.context import NodeContext
from nnc.ir.nn_base import TensorSpec
from nnc.ir.types import DYNAMIC

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


@dataclass(frozen=True)
class Window:
    """2-D window attributes in nn order: pads = (top, left, bottom, right)."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    lifted: bool  # the ONNX op was 1-D


def window(node: NodeContext, kernel: tuple[int, ...], in_spatial: tuple[int, ...]) -> Window:
    """Resolve strides/pads/dilations/auto_pad of ``node`` for ``kernel`` into a 2-D Window."""
    n = len(kernel)
    if n not in (1, 2):
        raise node.bad_attr(
            "kernel_shape", list(kernel), f"{n}-D windows are not supported (only 1-D and 2-D)"
        )
    if len(in_spatial) != n:
        raise node.bad_attr(
            "kernel_shape", list(kernel), f"input has {len(in_spatial)} spatial dims"
        )
    strides = node.ints("strides", (1,) * n)
    dilations = node.ints("dilations", (1,) * n)
    for key, vals in (("strides", strides), ("dilations", dilations)):
        if len(vals) != n or min(vals) < 1:
            raise node.bad_attr(key, list(vals), f"expected {n} positive values")
    pads = _resolve_pads(node, kernel, in_spatial, strides, dilations)
    if n == 2:
        return Window(kernel, strides, pads, dilations, False)  # type: ignore[arg-type]
    return Window(
        (1, kernel[0]), (1, strides[0]), (0, pads[0], 0, pads[1]), (1, dilations[0]), True
    )


def _resolve_pads(node: NodeContext, kernel, in_spatial, strides, dilations) -> tuple[int, ...]:
    """ONNX-order pads (begins then ends) after applying auto_pad."""
    n = len(kernel)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        raise node.bad_attr("auto_pad", auto_pad, f"expected one of {', '.join(AUTO_PADS)}")
    if auto_pad == "VALID":
        return (0,) * (2 * n)
    if auto_pad == "NOTSET":
        pads = node.ints("pads", (0,) * (2 * n))
        if len(pads) != 2 * n or min(pads) < 0:
            raise node.bad_attr("pads", list(pads), f"expected {2 * n} non-negative values")
        return pads
    if DYNAMIC in in_spatial:
        raise node.bad_attr("auto_pad", auto_pad, "needs static spatial dimensions")
    begins, ends = [], []
    for size, k, s, d in zip(in_spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return tuple(begins + ends)


def lift_1d(node: NodeContext, x: SSAValue) -> SSAValue:
    """(N, C, L) -> (N, C, 1, L)."""
    n, c, length = TensorSpec.of(x).shape
    return node.reshape(x, (n, c, 1, length))


def lower_1d(node: NodeContext, y: SSAValue) -> SSAValue:
    """(N, C, 1, L) -> (N, C, L)."""
    n, c, _, length = TensorSpec.of(y).shape
    return node.reshape(y, (n, c, length))
