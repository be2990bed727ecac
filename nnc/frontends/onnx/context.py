"""Conversion state: the value environment of one ONNX graph and a per-node view of it.

Every ONNX tensor name maps to an SSA value, to a compile-time-known numpy array, or to
both (a known array gets one ``nn.constant`` the first time an nn op needs it; arrays
are memoized by identity so a weight shared by several nodes is materialized once).

Shape tensors of values with dynamic dimensions stay compile-time known: each dynamic
dimension becomes a *token*, a large negative int64 recording which SSA value and which
axis it stands for. Data movement (Gather, Concat, Slice...) carries tokens along; Reshape
resolves a token that names a dimension of its own input; any arithmetic on a token, or
materializing one as a tensor, is an UnsupportedOpError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper
from xdsl.ir import Operation, SSAValue

from nnc.errors import UnsupportedOpError
from nnc.ir.builder import GraphBuilder
from nnc.ir.nn_base import TensorSpec
from nnc.ir.ops_shape import ReshapeOp
from nnc.ir.types import DYNAMIC, dtype_of_numpy

#: Output of a converter: an SSA value, or a numpy array known at compile time.
Output = SSAValue | np.ndarray

#: Tokens for dynamic dimensions are ``TOKEN_BASE - k`` for ``0 <= k < MAX_TOKENS`` (k
#: indexes the token table); a range no real shape or slice bound (e.g. -2**63+1) uses.
TOKEN_BASE = -(1 << 40)
MAX_TOKENS = 1 << 20


def is_token(v: int) -> bool:
    """True when ``v`` is a dynamic-dimension token."""
    return TOKEN_BASE - MAX_TOKENS < v <= TOKEN_BASE


def has_tokens(arr: np.ndarray) -> bool:
    """True when an integer array holds dynamic-dimension tokens."""
    if arr.dtype.kind != "i" or arr.size == 0:
        return False
    return bool(((arr <= TOKEN_BASE) & (arr > TOKEN_BASE - MAX_TOKENS)).any())


class GraphState:
    """Value environment and IR builder shared by all nodes of one graph."""

    def __init__(
        self,
        builder: GraphBuilder,
        opset: int,
        label: str,
        load_tensor: Callable[[onnx.TensorProto], np.ndarray],
    ):
        self.builder = builder
        self.opset = opset
        self.label = label
        self.load_tensor = load_tensor  # TensorProto -> array (external data resolved)
        self.values: dict[str, SSAValue] = {}
        self.known: dict[str, np.ndarray] = {}
        self._const_memo: dict[int, tuple[np.ndarray, SSAValue]] = {}
        self._tokens: list[tuple[SSAValue, int]] = []

    def defined(self, name: str) -> bool:
        return name in self.values or name in self.known

    def bind(self, name: str, out: Output) -> None:
        """Record ``out`` as the value of tensor ``name``."""
        if isinstance(out, SSAValue):
            self.values[name] = out
        else:
            self.known[name] = np.asarray(out)

    def value(self, name: str, where: str) -> SSAValue:
        """The SSA value of ``name``, materializing a known array as ``nn.constant`` once."""
        if name in self.values:
            return self.values[name]
        arr = self.known[name]
        memo = self._const_memo.get(id(arr))
        if memo is not None:
            return memo[1]
        value = self.constant(arr, where)
        self._const_memo[id(arr)] = (arr, value)
        return value

    def constant(self, arr: np.ndarray, where: str) -> SSAValue:
        """A fresh ``nn.constant`` for ``arr`` (float64 is narrowed to float32)."""
        if has_tokens(arr):
            raise UnsupportedOpError(f"{where}: a dynamic dimension is used as tensor data")
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        try:
            dtype_of_numpy(arr.dtype)
        except ValueError:
            raise UnsupportedOpError(
                f"{where}: constant of dtype {arr.dtype} is not supported"
            ) from None
        return self.builder.constant(arr)

    def spec(self, name: str) -> TensorSpec:
        """Shape and dtype of tensor ``name`` (SSA or known)."""
        if name in self.values:
            return TensorSpec.of(self.values[name])
        arr = self.known[name]
        return TensorSpec(tuple(arr.shape), _dtype_name(arr.dtype))

    def shape_tokens(self, value: SSAValue) -> list[int]:
        """The shape of ``value`` as ints, with a token for each dynamic dimension."""
        out = []
        for axis, d in enumerate(TensorSpec.of(value).shape):
            if d != DYNAMIC:
                out.append(d)
                continue
            key = (value, axis)
            if key not in self._tokens:
                self._tokens.append(key)
            out.append(TOKEN_BASE - self._tokens.index(key))
        return out

    def token_source(self, token: int) -> tuple[SSAValue, int] | None:
        """(value, axis) that a dynamic-dimension token stands for, or None."""
        k = TOKEN_BASE - int(token)
        return self._tokens[k] if is_token(token) and k < len(self._tokens) else None


def _dtype_name(dt: np.dtype) -> str:
    try:
        return dtype_of_numpy(dt)
    except ValueError:
        return str(dt)


def _decode_attr(attr: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


class NodeContext:
    """One ONNX node as seen by its converter: inputs, attributes, opset, IR insertion."""

    def __init__(self, graph: GraphState, proto: onnx.NodeProto, index: int):
        self.graph = graph
        self.proto = proto
        self.op_type = proto.op_type
        self.opset = graph.opset
        self.label = f"'{proto.name}'" if proto.name else f"#{index}"
        self._attrs = {a.name: a for a in proto.attribute}

    # -- errors ------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """``Conv node 'conv1' (opset 17)``: the prefix of every error about this node."""
        return f"{self.op_type} node {self.label} (opset {self.opset})"

    def error(self, message: str) -> UnsupportedOpError:
        """An UnsupportedOpError about this node (raise it)."""
        return UnsupportedOpError(f"{self.where}: {message}")

    def bad_attr(self, name: str, value: Any, why: str) -> UnsupportedOpError:
        """An UnsupportedOpError naming this node and the attribute it cannot handle."""
        return self.error(f"unsupported attribute {name}={value!r}: {why}")

    # -- attributes --------------------------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        """Attribute ``name`` as a Python value (strings decoded), or ``default``."""
        a = self._attrs.get(name)
        return default if a is None else _decode_attr(a)

    def ints(self, name: str, default: Sequence[int] | None = None) -> tuple[int, ...] | None:
        """An ints attribute as a tuple (``default`` when absent)."""
        value = self.attr(name)
        if value is None:
            return None if default is None else tuple(default)
        return tuple(int(v) for v in value)

    # -- inputs ------------------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return len(self.proto.input)

    def has_input(self, i: int) -> bool:
        """True when optional input ``i`` is present (not omitted or empty)."""
        return i < len(self.proto.input) and self.proto.input[i] != ""

    def known(self, i: int) -> np.ndarray | None:
        """Input ``i`` if known at compile time (None if absent or computed at run time)."""
        return self.graph.known.get(self.proto.input[i]) if self.has_input(i) else None

    def const(self, i: int, what: str) -> np.ndarray:
        """Input ``i``, which must be known at compile time (else UnsupportedOpError)."""
        arr = self.known(i)
        if arr is None:
            raise self.error(f"input '{what}' must be a compile-time constant")
        return arr

    def const_ints(self, i: int, what: str) -> tuple[int, ...]:
        """A constant integer input as a tuple of ints (tokens rejected)."""
        arr = self.const(i, what)
        if has_tokens(arr):
            raise self.error(f"input '{what}' depends on a dynamic dimension")
        return tuple(int(v) for v in arr.reshape(-1))

    def input(self, i: int) -> SSAValue:
        """Input ``i`` as an SSA value (known arrays become ``nn.constant``)."""
        if not self.has_input(i):
            raise self.error(f"required input {i} is missing")
        return self.graph.value(self.proto.input[i], self.where)

    def spec(self, i: int) -> TensorSpec:
        """Shape and dtype of input ``i``."""
        return self.graph.spec(self.proto.input[i])

    # -- building ----------------------------------------------------------------------
    def insert(self, op: Operation) -> SSAValue:
        """Append ``op`` to the graph; returns its result."""
        return self.graph.builder.insert(op)

    def constant(self, arr: np.ndarray) -> SSAValue:
        """A new ``nn.constant`` holding ``arr``."""
        return self.graph.constant(np.asarray(arr), self.where)

    def reshape(self, value: SSAValue, shape: Sequence[int]) -> SSAValue:
        """Reshape ``value`` to ``shape`` (at most one DYNAMIC entry); no-op if equal."""
        shape = tuple(int(d) for d in shape)
        if TensorSpec.of(value).shape == shape:
            return value
        n_dyn = shape.count(DYNAMIC)
        if n_dyn > 1:
            raise self.error(f"reshape to {_fmt(shape)} has more than one dynamic dimension")
        target = [-1 if d == DYNAMIC else d for d in shape]
        return self.insert(ReshapeOp(value, shape=target))


def _fmt(shape: Sequence[int]) -> str:
    return "(" + ", ".join("?" if d == DYNAMIC else str(d) for d in shape) + ")"
