"""ONNX broadcasting arithmetic -> nn binary ops.

Add, Sub, Mul, Div, Pow take two inputs with multidirectional (numpy) broadcasting.
Max, Min, Sum and Mean take one or more inputs and become a left-to-right chain of
binary ops (Mean divides the sum by N). Compile-time-known operands become float32
constants (e.g. Pow's integer exponent). Nodes whose inputs are all known are folded in
numpy instead (see ``folding.py``).
"""

from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter
from nnc.ir import ops_elementwise as ew

_BINARY = {"Add": ew.AddOp, "Sub": ew.SubOp, "Mul": ew.MulOp, "Div": ew.DivOp, "Pow": ew.PowOp}
_VARIADIC = {"Sum": ew.AddOp, "Max": ew.MaxOp, "Min": ew.MinOp, "Mean": ew.AddOp}


def float_operand(node: NodeContext, i: int) -> SSAValue:
    """Input ``i`` as a float32 SSA value (known non-float32 arrays are cast)."""
    known = node.known(i)
    if known is not None and known.dtype != np.float32:
        return node.constant(known.astype(np.float32))
    return node.input(i)


@converter(*_BINARY)
def convert_binary(node: NodeContext) -> list[Output]:
    """Two-input broadcasting arithmetic."""
    op_class = _BINARY[node.op_type]
    return [node.insert(op_class(float_operand(node, 0), float_operand(node, 1)))]


@converter(*_VARIADIC)
def convert_variadic(node: NodeContext) -> list[Output]:
    """Sum/Max/Min/Mean of N >= 1 broadcasting inputs as a chain of binary ops."""
    if node.num_inputs < 1:
        raise node.error("needs at least one input")
    op_class = _VARIADIC[node.op_type]
    acc = float_operand(node, 0)
    for i in range(1, node.num_inputs):
        acc = node.insert(op_class(acc, float_operand(node, i)))
    if node.op_type == "Mean" and node.num_inputs > 1:
        count = node.constant(np.array(node.num_inputs, np.float32))
        acc = node.insert(ew.DivOp(acc, count))
    return [acc]
