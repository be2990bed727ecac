"""ONNX ops that cut, join and pad tensors -> ``nn.slice`` / ``nn.concat`` / ``nn.pad``.

* Slice: opset 9 ``starts/ends/axes`` attributes; opset 10+ inputs (starts, ends, axes?,
  steps?) that must be compile-time known. Negative indices and steps follow ONNX
  clamping. Sliced axes must be static.
* Split -> one slice per output: sizes from the ``split`` attribute (opset < 13) or input
  (13+), else equal parts (opset 18 ``num_outputs``: ceil-sized parts, last one smaller).
* Concat; Gather of run-time data with constant indices that form an arithmetic
  progression (a scalar index drops the axis) -> slice (+ reshape).
* Pad: opset < 11 attributes ``pads/mode/value``; 11+ inputs pads, constant_value?, axes?
  (18+). Modes constant/reflect/edge; negative pads (cropping) only in constant mode.

All of them fold in numpy when their inputs are known.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter, folder
from nnc.ir.ops_shape import ConcatOp, PadOp, SliceOp
from nnc.ir.types import DYNAMIC

_INT64_MAX = np.iinfo(np.int64).max

# -------------------------------------------------------------------------------- Slice


def _slice_params(node: NodeContext, rank: int) -> dict[str, tuple[int, ...]]:
    """starts/ends/axes/steps of a Slice node (axes normalized, defaults filled in)."""
    if node.opset < 10:
        starts, ends = node.ints("starts"), node.ints("ends")
        axes, steps = node.ints("axes"), None
    else:
        starts, ends = node.const_ints(1, "starts"), node.const_ints(2, "ends")
        axes = node.const_ints(3, "axes") if node.has_input(3) else None
        steps = node.const_ints(4, "steps") if node.has_input(4) else None
    if starts is None or ends is None or len(starts) != len(ends):
        raise node.error("starts and ends are required and must have equal length")
    axes = axes if axes is not None else tuple(range(len(starts)))
    steps = steps if steps is not None else (1,) * len(starts)
    if len(axes) != len(starts) or len(steps) != len(starts) or 0 in steps:
        raise node.error(f"bad slice axes {list(axes)} / steps {list(steps)}")
    if any(not -rank <= a < rank for a in axes):
        raise node.error(f"slice axes {list(axes)} out of range for rank {rank}")
    clamp = [max(min(v, _INT64_MAX), -_INT64_MAX) for v in starts + ends]
    return {
        "starts": tuple(clamp[: len(starts)]),
        "ends": tuple(clamp[len(starts) :]),
        "axes": tuple(a % rank for a in axes),
        "steps": steps,
    }


@converter("Slice")
def convert_slice(node: NodeContext) -> list[Output]:
    """Slice with compile-time-known parameters."""
    return [node.insert(SliceOp(node.input(0), **_slice_params(node, node.spec(0).rank)))]


def _np_slice(x: np.ndarray, p: dict[str, Sequence[int]]) -> np.ndarray:
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(p["starts"], p["ends"], p["axes"], p["steps"]):
        lo, hi, st = slice(start, end, step).indices(x.shape[axis])
        index[axis] = slice(lo, None if (hi < 0 and st < 0) else hi, st)
    return x[tuple(index)]


@folder("Slice")
def fold_slice(node: NodeContext, x: np.ndarray, *_: np.ndarray) -> list[np.ndarray]:
    return [_np_slice(x, _slice_params(node, x.ndim))]


# -------------------------------------------------------------------------------- Split


def _split_sizes(node: NodeContext, dim: int) -> list[int]:
    n_out = len(node.proto.output)
    sizes = (
        node.ints("split")
        if node.opset < 13
        else (node.const_ints(1, "split") if node.has_input(1) else None)
    )
    if sizes is not None:
        if len(sizes) != n_out or sum(sizes) != dim or min(sizes, default=0) < 0:
            raise node.error(f"split sizes {list(sizes)} do not cut dim {dim} into {n_out}")
        return list(sizes)
    if dim == DYNAMIC:
        raise node.error("the split axis must be static")
    parts = int(node.attr("num_outputs", n_out)) if node.opset >= 18 else n_out
    if parts != n_out:
        raise node.bad_attr("num_outputs", parts, f"node has {n_out} outputs")
    if dim % parts == 0:
        return [dim // parts] * parts
    if node.opset < 18:
        raise node.error(f"dim {dim} does not split evenly into {parts}")
    chunk = -(-dim // parts)
    if (parts - 1) * chunk >= dim:
        raise node.bad_attr("num_outputs", parts, f"dim {dim} leaves an empty last split")
    return [chunk] * (parts - 1) + [dim - (parts - 1) * chunk]


def _split_ranges(node: NodeContext, shape: Sequence[int]) -> tuple[int, list[tuple[int, int]]]:
    axis = int(node.attr("axis", 0))
    if not -len(shape) <= axis < len(shape):
        raise node.bad_attr("axis", axis, f"out of range for rank {len(shape)}")
    axis %= len(shape)
    sizes = _split_sizes(node, shape[axis])
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    return axis, [(s, s + n) for s, n in zip(starts, sizes)]


@converter("Split")
def convert_split(node: NodeContext) -> list[Output]:
    """Split along ``axis`` into one slice per output."""
    x = node.input(0)
    axis, ranges = _split_ranges(node, node.spec(0).shape)
    return [
        node.insert(SliceOp(x, starts=[a], ends=[b], axes=[axis], steps=[1])) for a, b in ranges
    ]


@folder("Split")
def fold_split(node: NodeContext, x: np.ndarray, *_: np.ndarray) -> list[np.ndarray]:
    axis, ranges = _split_ranges(node, x.shape)
    return [np.take(x, range(a, b), axis=axis) for a, b in ranges]


# ------------------------------------------------------------------------------- Concat


def _concat_axis(node: NodeContext, rank: int) -> int:
    axis = node.attr("axis")
    if axis is None or not -rank <= int(axis) < rank:
        raise node.bad_attr("axis", axis, f"required, in range for rank {rank}")
    return int(axis) % rank


@converter("Concat")
def convert_concat(node: NodeContext) -> list[Output]:
    """Concatenate along ``axis``."""
    values = [node.input(i) for i in range(node.num_inputs) if node.has_input(i)]
    axis = _concat_axis(node, node.spec(0).rank)
    return [values[0]] if len(values) == 1 else [node.insert(ConcatOp(*values, axis=axis))]


@folder("Concat")
def fold_concat(node: NodeContext, *xs: np.ndarray) -> list[np.ndarray]:
    xs = tuple(x for x in xs if x is not None)
    return [np.concatenate(xs, axis=_concat_axis(node, xs[0].ndim))]


# ------------------------------------------------------------------------------- Gather


def _gather_axis(node: NodeContext, rank: int) -> int:
    axis = int(node.attr("axis", 0))
    if not -rank <= axis < rank:
        raise node.bad_attr("axis", axis, f"out of range for rank {rank}")
    return axis % rank


@converter("Gather")
def convert_gather(node: NodeContext) -> list[Output]:
    """Gather of run-time data at constant, evenly spaced indices -> slice."""
    shape = node.spec(0).shape
    axis = _gather_axis(node, len(shape))
    idx = node.const(1, "indices").astype(np.int64)
    dim = shape[axis]
    if dim == DYNAMIC or idx.ndim > 1 or idx.size == 0:
        raise node.error("only scalar or 1-D constant indices into a static axis are supported")
    flat = np.where(idx < 0, idx + dim, idx).reshape(-1)
    if flat.min() < 0 or flat.max() >= dim:
        raise node.error(f"indices {idx.tolist()} out of range for dim {dim}")
    step = int(flat[1] - flat[0]) if flat.size > 1 else 1
    if step == 0 or np.any(np.diff(flat) != step):
        raise node.error(f"indices {idx.tolist()} are not evenly spaced (not a slice)")
    end = int(flat[-1]) + step
    end = end if end >= 0 else -_INT64_MAX
    y = node.insert(
        SliceOp(node.input(0), starts=[int(flat[0])], ends=[end], axes=[axis], steps=[step])
    )
    if idx.ndim == 0:
        y = node.reshape(y, tuple(d for i, d in enumerate(shape) if i != axis))
    return [y]


@folder("Gather")
def fold_gather(node: NodeContext, data: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:
    axis = _gather_axis(node, data.ndim)
    dim = data.shape[axis]
    idx = np.where(indices < 0, indices + dim, indices)
    return [np.take(data, idx, axis=axis)]


# ---------------------------------------------------------------------------------- Pad


def _pad_params(node: NodeContext, rank: int) -> tuple[list[int], str, float]:
    mode = node.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise node.bad_attr("mode", mode, "expected constant, reflect or edge")
    if node.opset < 11:
        pads, value = node.ints("pads"), float(node.attr("value", 0.0))
        axes = None
    else:
        pads = node.const_ints(1, "pads")
        value = float(node.const(2, "constant_value").reshape(())) if node.has_input(2) else 0.0
        axes = node.const_ints(3, "axes") if node.has_input(3) else None
    axes = tuple(range(rank)) if axes is None else tuple(a % rank for a in axes)
    if pads is None or len(pads) != 2 * len(axes):
        raise node.error(f"pads {pads} do not match {len(axes)} axes")
    full = [0] * (2 * rank)
    for k, a in enumerate(axes):
        full[a], full[a + rank] = pads[k], pads[k + len(axes)]
    if min(full) < 0 and mode != "constant":
        raise node.error(f"negative pads are only supported in constant mode, not {mode!r}")
    return full, mode, value


@converter("Pad")
def convert_pad(node: NodeContext) -> list[Output]:
    """Pad; negative (cropping) pads become a slice first."""
    rank = node.spec(0).rank
    pads, mode, value = _pad_params(node, rank)
    y = node.input(0)
    if min(pads) < 0:
        crop = [max(-p, 0) for p in pads]
        axes = [a for a in range(rank) if crop[a] or crop[a + rank]]
        y = node.insert(
            SliceOp(
                y,
                starts=[crop[a] for a in axes],
                ends=[-crop[a + rank] if crop[a + rank] else _INT64_MAX for a in axes],
                axes=axes,
                steps=[1] * len(axes),
            )
        )
    grow = [max(p, 0) for p in pads]
    if any(grow):
        y = node.insert(PadOp(y, pads=grow, mode=mode, value=value))
    return [y]


@folder("Pad")
def fold_pad(node: NodeContext, x: np.ndarray, *_: np.ndarray) -> list[np.ndarray]:
    pads, mode, value = _pad_params(node, x.ndim)
    rank = x.ndim
    crop = tuple(slice(max(-pads[a], 0), x.shape[a] - max(-pads[a + rank], 0)) for a in range(rank))
    width = [(max(pads[a], 0), max(pads[a + rank], 0)) for a in range(rank)]
    x = x[crop]
    if mode == "constant":
        return [np.pad(x, width, constant_values=value)]
    return [np.pad(x, width, mode=mode)]
