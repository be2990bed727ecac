"""Activation ranges recorded in the IR by the ``calibrate`` pass.

The range of an op's first result is the discardable attribute ``nn.range =
array<f64: lo, hi>`` on the op; the ranges of ``main``'s arguments are the function
attribute ``nn.arg_ranges`` (one ``array<f64: lo, hi>`` per argument, empty = unknown).
Attributes survive the text round trip, so ``nnc-opt -p calibrate{...},quantize`` works.
"""

from __future__ import annotations

from xdsl.dialects.builtin import ArrayAttr, DenseArrayBase, f64
from xdsl.ir import BlockArgument, SSAValue

from nnc.ir.builder import main_func

RANGE_ATTR = "nn.range"
ARG_RANGES_ATTR = "nn.arg_ranges"


def _dense(lo: float, hi: float) -> DenseArrayBase:
    return DenseArrayBase.from_list(f64, [float(lo), float(hi)])


def set_range(value: SSAValue, lo: float, hi: float) -> None:
    """Record the calibrated range of ``value``."""
    if isinstance(value, BlockArgument):
        fn = value.block.parent_op()
        n = len(value.block.args)
        old = fn.attributes.get(ARG_RANGES_ATTR)
        items = list(old.data) if old is not None else []
        items += [DenseArrayBase.from_list(f64, [])] * (n - len(items))
        items[value.index] = _dense(lo, hi)
        fn.attributes[ARG_RANGES_ATTR] = ArrayAttr(items)
    else:
        value.owner.attributes[RANGE_ATTR] = _dense(lo, hi)


def get_range(value: SSAValue) -> tuple[float, float] | None:
    """The calibrated range of ``value``, or None."""
    if isinstance(value, BlockArgument):
        fn = value.block.parent_op()
        attr = fn.attributes.get(ARG_RANGES_ATTR) if fn is not None else None
        if attr is None or value.index >= len(attr.data):
            return None
        vals = attr.data[value.index].get_values()
    else:
        if value.index != 0:
            return None
        attr = value.owner.attributes.get(RANGE_ATTR)
        if attr is None:
            return None
        vals = attr.get_values()
    return (float(vals[0]), float(vals[1])) if len(vals) == 2 else None


def has_ranges(module) -> bool:
    """True when the calibrate pass annotated ``module``."""
    fn = main_func(module)
    if ARG_RANGES_ATTR in fn.attributes:
        return True
    return any(RANGE_ATTR in op.attributes for op in fn.body.blocks[0].ops)
