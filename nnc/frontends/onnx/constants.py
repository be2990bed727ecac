"""Compile-time-known values: Constant, ConstantOfShape, Shape, Size, Range, and numpy
folders for arithmetic on known tensors (shape-chain folding).

Shape of a value with static dims is a known int64 array; a dynamic dim becomes a token
(see ``context.py``) that may flow through data movement but not through arithmetic
(UnsupportedOpError). Integer Div truncates toward zero like ONNX runtimes; float
results keep the dtype of the first input (e.g. Pow with an int64 exponent).
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from nnc.frontends.onnx.context import NodeContext, Output, has_tokens
from nnc.frontends.onnx.registry import converter, folder
from nnc.ir.types import DYNAMIC


@folder("Constant")
def fold_constant(node: NodeContext) -> list[np.ndarray]:
    """Constant with value / value_float(s) / value_int(s)."""
    if node.attr("value") is not None:
        return [node.graph.load_tensor(node.attr("value"))]
    simple = {
        "value_float": np.float32,
        "value_floats": np.float32,
        "value_int": np.int64,
        "value_ints": np.int64,
    }
    for key, dtype in simple.items():
        value = node.attr(key)
        if value is not None:
            return [np.array(value, dtype=dtype)]
    names = [a.name for a in node.proto.attribute]
    raise node.bad_attr(
        names[0] if names else "value",
        "...",
        "only value, value_float(s) and value_int(s) constants are supported",
    )


@folder("ConstantOfShape")
def fold_constant_of_shape(node: NodeContext, shape: np.ndarray) -> list[np.ndarray]:
    """A tensor of ``shape`` filled with the one-element ``value`` (default float32 0)."""
    dims = node.const_ints(0, "input")
    tensor = node.attr("value")
    fill = (
        numpy_helper.to_array(tensor).reshape(-1) if tensor is not None else np.zeros(1, np.float32)
    )
    if fill.size != 1 or min(dims, default=0) < 0:
        raise node.error(f"bad value {fill.tolist()} or shape {list(dims)}")
    return [np.full(dims, fill[0], dtype=fill.dtype)]


@converter("Shape")
def convert_shape(node: NodeContext) -> list[Output]:
    """Known shape of the input (tokens for dynamic dims); start/end from opset 15."""
    name = node.proto.input[0]
    if name in node.graph.values:
        dims = node.graph.shape_tokens(node.graph.values[name])
    else:
        dims = list(node.graph.known[name].shape)
    start, end = int(node.attr("start", 0)), node.attr("end")
    dims = dims[start:] if end is None else dims[start : int(end)]
    return [np.array(dims, dtype=np.int64)]


@converter("Size")
def convert_size(node: NodeContext) -> list[Output]:
    """Number of elements (input dims must be static)."""
    shape = node.spec(0).shape
    if DYNAMIC in shape:
        raise node.error("Size of a tensor with dynamic dimensions is not supported")
    return [np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)]


def _no_tokens(node: NodeContext, arrays) -> None:
    if any(a is not None and has_tokens(a) for a in arrays):
        raise node.error("arithmetic on a dynamic dimension is not supported")


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


_BINARY = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Pow": np.power,
    "Div": lambda a, b: _int_div(a, b) if a.dtype.kind in "iu" else np.divide(a, b),
}
_VARIADIC = {"Sum": np.add, "Max": np.maximum, "Min": np.minimum, "Mean": np.add}
_UNARY = {
    "Neg": np.negative,
    "Abs": np.abs,
    "Sqrt": np.sqrt,
    "Reciprocal": np.reciprocal,
    "Floor": np.floor,
    "Ceil": np.ceil,
}


@folder(*_BINARY)
def fold_binary(node: NodeContext, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    _no_tokens(node, (a, b))
    with np.errstate(all="ignore"):
        return [np.asarray(_BINARY[node.op_type](a, b)).astype(a.dtype)]


@folder(*_VARIADIC)
def fold_variadic(node: NodeContext, *xs: np.ndarray) -> list[np.ndarray]:
    _no_tokens(node, xs)
    acc = xs[0]
    for x in xs[1:]:
        acc = _VARIADIC[node.op_type](acc, x)
    if node.op_type == "Mean":
        acc = acc / len(xs)
    return [np.asarray(acc).astype(xs[0].dtype)]


@folder(*_UNARY)
def fold_unary(node: NodeContext, x: np.ndarray) -> list[np.ndarray]:
    _no_tokens(node, (x,))
    with np.errstate(all="ignore"):
        return [np.asarray(_UNARY[node.op_type](x)).astype(x.dtype)]


@folder("Range")
def fold_range(node: NodeContext, start, limit, delta) -> list[np.ndarray]:
    """Range(start, limit, delta) of known scalars."""
    _no_tokens(node, (start, limit, delta))
    if float(delta) == 0:
        raise node.error("Range delta is 0")
    return [np.arange(start.item(), limit.item(), delta.item()).astype(start.dtype)]
