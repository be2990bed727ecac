"""Shape arithmetic shared by the nn ops' type inference (dynamic-dimension aware)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nnc.ir.types import DYNAMIC


class ShapeRuleError(ValueError):
    """Shapes or attributes are inconsistent."""


def broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    """Numpy-style multidirectional broadcast of shapes (DYNAMIC wins over 1)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1 and DYNAMIC in dims:
            dims.discard(DYNAMIC)
        if len(dims) > 1:
            raise ShapeRuleError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def window_out(
    size: int,
    kernel: int,
    stride: int,
    pad_begin: int,
    pad_end: int,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a sliding window (conv/pool) along one spatial axis (ONNX rules).

    With ``ceil_mode`` a last partial window is kept only if it starts inside the input
    or its leading padding.
    """
    if size == DYNAMIC:
        return DYNAMIC
    span = dilation * (kernel - 1) + 1
    num = size + pad_begin + pad_end - span
    if num < 0:
        raise ShapeRuleError(f"window {span} larger than padded input {size + pad_begin + pad_end}")
    if stride <= 0:
        raise ShapeRuleError(f"stride must be positive, got {stride}")
    if not ceil_mode:
        return num // stride + 1
    out = -(-num // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def normalize_axis(axis: int, rank: int) -> int:
    """Map a possibly negative axis into [0, rank)."""
    if not -rank <= axis < rank:
        raise ShapeRuleError(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def product(dims: Sequence[int]) -> int:
    """Product of static dims (DYNAMIC if any is dynamic)."""
    if any(d == DYNAMIC for d in dims):
        return DYNAMIC
    return math.prod(dims)
