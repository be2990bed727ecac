"""ONNX reshaping ops -> ``nn.reshape`` / ``nn.transpose``, with numpy folders.

Reshape (``0`` copies the input dim unless ``allowzero=1``; ``-1`` is inferred; the
shape input must be compile-time known, possibly holding dynamic-dimension tokens that
name dims of the data input), Flatten, Transpose, Squeeze/Unsqueeze (axes attribute
before opset 13, input after), Expand (as a broadcast add of zeros), Identity, Dropout
(inference: output = input; the mask output is unsupported) and Cast (only to float32
of float32 data at run time; any cast of known data is folded).

Each op also has a folder: when its inputs are all known it is evaluated in numpy
(shape-chain folding), which carries dynamic-dimension tokens through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import TensorProto, helper
from xdsl.ir import SSAValue

from nnc.frontends.onnx.context import NodeContext, Output, has_tokens
from nnc.frontends.onnx.registry import converter, folder
from nnc.ir import ops_elementwise as ew
from nnc.ir.ops_shape import TransposeOp
from nnc.ir.shape_rules import broadcast, product
from nnc.ir.types import DYNAMIC

# ------------------------------------------------------------------------------ Reshape


def reshape_target(
    node: NodeContext, in_shape: Sequence[int], target: np.ndarray, source: SSAValue | None = None
) -> tuple[int, ...]:
    """Resolve an ONNX Reshape target into a shape (DYNAMIC for run-time dims).

    0 copies the input dim (unless allowzero); a token naming dim ``k`` of ``source`` (the
    data input) copies that dim. A -1 is inferred when every dynamic input dim is copied
    (or the input is static); otherwise it becomes the one DYNAMIC output dim.
    """
    allowzero = int(node.attr("allowzero", 0))
    out: list[int] = []
    copied: list[int] = []  # dynamic input axes carried to the output
    for j, t in enumerate(int(v) for v in target.reshape(-1)):
        src = node.graph.token_source(t) if t < -1 else None
        if t == 0 and not allowzero:
            if j >= len(in_shape):
                raise node.error(f"shape entry {j} is 0 but the input has rank {len(in_shape)}")
            t = in_shape[j]
            copied += [j] if t == DYNAMIC else []
        elif src is not None and src[0] is source:
            t = DYNAMIC if in_shape[src[1]] == DYNAMIC else in_shape[src[1]]
            copied += [src[1]] if t == DYNAMIC else []
        elif t == 0 or t < -1:
            raise node.error(
                f"unsupported reshape target {_show(target)} "
                "(zero-size or foreign dynamic dimension)"
            )
        out.append(t)
    if out.count(-1) > 1:
        raise node.error(f"reshape target {_show(target)} has more than one -1")
    if -1 in out:
        dyn_in = sorted(i for i, d in enumerate(in_shape) if d == DYNAMIC)
        if dyn_in == sorted(copied):
            static_in = product([d for d in in_shape if d != DYNAMIC])
            static_out = product([d for d in out if d not in (-1, DYNAMIC)])
            if static_out == 0 or static_in % static_out:
                raise node.error(f"cannot reshape {tuple(in_shape)} to {_show(target)}")
            out[out.index(-1)] = static_in // static_out
        else:
            out[out.index(-1)] = DYNAMIC
    return tuple(out)


def _show(target: np.ndarray) -> str:
    return str([v if v > -2 else "?" for v in target.reshape(-1).tolist()])


@converter("Reshape")
def convert_reshape(node: NodeContext) -> list[Output]:
    """Reshape(data, shape) with a compile-time-known shape."""
    x = node.input(0)
    target = node.const(1, "shape")
    return [node.reshape(x, reshape_target(node, node.spec(0).shape, target, x))]


@folder("Reshape")
def fold_reshape(node: NodeContext, data: np.ndarray, shape: np.ndarray) -> list[np.ndarray]:
    return [data.reshape(reshape_target(node, data.shape, shape))]


# ------------------------------------------------------------------------------ Flatten


def _flat_shape(node: NodeContext, shape: Sequence[int]) -> tuple[int, int]:
    axis = int(node.attr("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise node.bad_attr("axis", axis, f"out of range for rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    return product(shape[:axis]), product(shape[axis:])


@converter("Flatten")
def convert_flatten(node: NodeContext) -> list[Output]:
    """Flatten to 2-D at ``axis`` (default 1)."""
    return [node.reshape(node.input(0), _flat_shape(node, node.spec(0).shape))]


@folder("Flatten")
def fold_flatten(node: NodeContext, x: np.ndarray) -> list[np.ndarray]:
    return [x.reshape(_flat_shape(node, x.shape))]


# ---------------------------------------------------------------------------- Transpose


def _perm(node: NodeContext, rank: int) -> tuple[int, ...]:
    perm = node.ints("perm", tuple(range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)):
        raise node.bad_attr("perm", list(perm), f"not a permutation of rank {rank}")
    return perm


@converter("Transpose")
def convert_transpose(node: NodeContext) -> list[Output]:
    """Transpose with ``perm`` (default: reverse the dims)."""
    return [node.insert(TransposeOp(node.input(0), perm=_perm(node, node.spec(0).rank)))]


@folder("Transpose")
def fold_transpose(node: NodeContext, x: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(np.transpose(x, _perm(node, x.ndim)))]


# -------------------------------------------------------------------- Squeeze/Unsqueeze


def axes_of(node: NodeContext, input_index: int, first_input_opset: int) -> tuple[int, ...] | None:
    """``axes`` from the attribute (before ``first_input_opset``) or the input (after)."""
    if node.opset < first_input_opset:
        return node.ints("axes")
    return node.const_ints(input_index, "axes") if node.has_input(input_index) else None


def _normalize(node: NodeContext, axes: Sequence[int], rank: int) -> list[int]:
    if any(not -rank <= a < rank for a in axes) or len(set(a % rank for a in axes)) != len(axes):
        raise node.error(f"bad axes {list(axes)} for rank {rank}")
    return sorted(a % rank for a in axes)


def _squeezed(node: NodeContext, shape: Sequence[int]) -> tuple[int, ...]:
    axes = axes_of(node, 1, 13)
    if axes is None:
        return tuple(d for d in shape if d != 1)
    axes = _normalize(node, axes, len(shape))
    if any(shape[a] != 1 for a in axes):
        raise node.error(f"cannot squeeze axes {axes} of shape {tuple(shape)}")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _unsqueezed(node: NodeContext, shape: Sequence[int]) -> tuple[int, ...]:
    axes = axes_of(node, 1, 13)
    if axes is None:
        raise node.error("axes are required")
    rank = len(shape) + len(axes)
    axes = _normalize(node, axes, rank)
    rest = iter(shape)
    return tuple(1 if i in axes else next(rest) for i in range(rank))


@converter("Squeeze")
def convert_squeeze(node: NodeContext) -> list[Output]:
    """Drop size-1 axes (all static size-1 axes when none are given)."""
    return [node.reshape(node.input(0), _squeezed(node, node.spec(0).shape))]


@converter("Unsqueeze")
def convert_unsqueeze(node: NodeContext) -> list[Output]:
    """Insert size-1 axes at ``axes`` (positions in the output)."""
    return [node.reshape(node.input(0), _unsqueezed(node, node.spec(0).shape))]


@folder("Squeeze")
def fold_squeeze(node: NodeContext, x: np.ndarray, axes=None) -> list[np.ndarray]:
    return [x.reshape(_squeezed(node, x.shape))]


@folder("Unsqueeze")
def fold_unsqueeze(node: NodeContext, x: np.ndarray, axes=None) -> list[np.ndarray]:
    return [x.reshape(_unsqueezed(node, x.shape))]


# ------------------------------------------------------------------------------- Expand


@converter("Expand")
def convert_expand(node: NodeContext) -> list[Output]:
    """Expand(x, shape): ``x + zeros`` where the zeros carry only the broadcast dims."""
    xs = node.spec(0).shape
    target = node.const_ints(1, "shape")
    full = broadcast(xs, target)
    rank = len(full)
    padded = (1,) * (rank - len(xs)) + tuple(xs)
    zeros_shape = tuple(f if p == 1 else 1 for p, f in zip(padded, full))
    if zeros_shape == (1,) * rank and len(xs) == rank:
        return [node.input(0)]
    zeros = node.constant(np.zeros(zeros_shape, np.float32))
    return [node.insert(ew.AddOp(node.input(0), zeros))]


@folder("Expand")
def fold_expand(node: NodeContext, x: np.ndarray, shape: np.ndarray) -> list[np.ndarray]:
    target = node.const_ints(1, "shape")
    return [np.broadcast_to(x, np.broadcast_shapes(x.shape, target)).copy()]


# ---------------------------------------------------------------- Identity, Dropout, Cast


@converter("Identity")
def convert_identity(node: NodeContext) -> list[Output]:
    """Output = input (no op)."""
    return [node.input(0)]


@folder("Identity")
def fold_identity(node: NodeContext, x: np.ndarray) -> list[np.ndarray]:
    return [x]


def _check_dropout(node: NodeContext) -> None:
    training = node.known(2) if node.opset >= 12 else None
    if node.opset >= 12 and node.has_input(2) and (training is None or bool(training.any())):
        raise node.error("training_mode must be a constant false (inference only)")


@converter("Dropout")
def convert_dropout(node: NodeContext) -> list[Output]:
    """Inference Dropout: output = input (the mask output is unsupported)."""
    _check_dropout(node)
    return [node.input(0)]


@folder("Dropout")
def fold_dropout(node: NodeContext, x: np.ndarray, *_: np.ndarray) -> list[np.ndarray]:
    _check_dropout(node)
    return [x]


def _cast_dtype(node: NodeContext) -> np.dtype:
    to = node.attr("to")
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(int(to)))
    except (KeyError, TypeError, ValueError):
        raise node.bad_attr("to", to, "unknown element type") from None


@converter("Cast")
def convert_cast(node: NodeContext) -> list[Output]:
    """Cast of run-time data: float32 -> float32 (removed); int32/int8/uint8 -> float32
    (``nn.int_to_float``, e.g. after MatMulInteger in dynamically quantized models)."""
    to = int(node.attr("to", 0))
    if to == TensorProto.FLOAT and node.spec(0).dtype in ("i32", "i8", "u8"):
        from nnc.ir.ops_quant import IntToFloatOp

        return [node.insert(IntToFloatOp(node.input(0)))]
    if to != TensorProto.FLOAT or node.spec(0).dtype != "f32":
        name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else to
        raise node.bad_attr(
            "to",
            name,
            f"casting run-time {node.spec(0).dtype} data "
            "is not supported (only float32 to float32)",
        )
    return [node.input(0)]


@folder("Cast")
def fold_cast(node: NodeContext, x: np.ndarray) -> list[np.ndarray]:
    dtype = _cast_dtype(node)
    if has_tokens(x) and dtype != np.int64:
        raise node.error("cannot cast a shape holding a dynamic dimension")
    return [x.astype(dtype)]
