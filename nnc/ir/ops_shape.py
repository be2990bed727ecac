"""nn ops that move or reshape data, and reductions along axes."""

from __future__ import annotations

from typing import Any, ClassVar

from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec, nn_op
from nnc.ir.shape_rules import product
from nnc.ir.types import DYNAMIC


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def _axis(axis: int, rank: int) -> int:
    _require(-rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    return axis % rank


@nn_op("nn.reshape", operands=("x",), props={"shape": ("ints", None)})
class ReshapeOp(NNOp):
    """Reinterpret the dense data with a new shape; one entry may be -1 (inferred).

    ``shape`` holds no 0 entries (the frontend resolves ONNX's copy-dim 0).
    """

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, shape = ins[0], list(p["shape"])
        _require(
            shape.count(-1) <= 1 and all(d > 0 or d == -1 for d in shape),
            f"bad reshape target {tuple(shape)}",
        )
        total = product(x.shape)
        if -1 in shape:
            known = product([d for d in shape if d != -1])
            if total == DYNAMIC:
                shape[shape.index(-1)] = DYNAMIC
            else:
                _require(
                    known > 0 and total % known == 0, f"cannot reshape {x.shape} to {p['shape']}"
                )
                shape[shape.index(-1)] = total // known
        elif total != DYNAMIC:
            _require(product(shape) == total, f"cannot reshape {x.shape} to {p['shape']}")
        return [TensorSpec(tuple(shape), x.dtype)]


@nn_op("nn.transpose", operands=("x",), props={"perm": ("ints", None)})
class TransposeOp(NNOp):
    """Permute dimensions: out.shape[i] = x.shape[perm[i]]."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, perm = ins[0], p["perm"]
        _require(sorted(perm) == list(range(x.rank)), f"bad permutation {perm} for rank {x.rank}")
        return [TensorSpec(tuple(x.shape[i] for i in perm), x.dtype)]


@nn_op("nn.concat", variadic="inputs", props={"axis": ("int", None)})
class ConcatOp(NNOp):
    """Concatenate along ``axis``; all other dims must match."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        _require(len(ins) >= 1, "concat needs at least one input")
        rank = ins[0].rank
        axis = _axis(p["axis"], rank)
        for s in ins:
            _require(
                s.rank == rank
                and all(a == b for i, (a, b) in enumerate(zip(s.shape, ins[0].shape)) if i != axis),
                f"concat shapes {[s.shape for s in ins]} differ off axis {axis}",
            )
        dims = [s.shape[axis] for s in ins]
        out = list(ins[0].shape)
        out[axis] = DYNAMIC if DYNAMIC in dims else sum(dims)
        return [TensorSpec(tuple(out), ins[0].dtype)]


@nn_op(
    "nn.slice",
    operands=("x",),
    props={
        "starts": ("ints", None),
        "ends": ("ints", None),
        "axes": ("ints", None),
        "steps": ("ints", None),
    },
)
class SliceOp(NNOp):
    """ONNX Slice with constant starts/ends/axes/steps (clamped like ONNX)."""

    @staticmethod
    def normalized(shape: tuple[int, ...], p: dict[str, Any]) -> list[tuple[int, int, int]]:
        """Per-axis (start, stop, step) as Python ``range`` arguments."""
        ranges = [(0, d, 1) for d in shape]
        for start, end, axis, step in zip(p["starts"], p["ends"], p["axes"], p["steps"]):
            axis = _axis(axis, len(shape))
            _require(step != 0, "slice step 0")
            dim = shape[axis]
            _require(dim != DYNAMIC, "slice of a dynamic dimension")
            ranges[axis] = slice(start, end, step).indices(dim)
        return ranges

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        _require(
            len({len(p[k]) for k in ("starts", "ends", "axes", "steps")}) == 1,
            "slice starts/ends/axes/steps differ in length",
        )
        sliced = {_axis(a, x.rank) for a in p["axes"]}
        shape = list(x.shape)
        ranges = SliceOp.normalized(
            tuple(d if i in sliced else 1 for i, d in enumerate(x.shape)), p
        )
        for i in sliced:
            shape[i] = len(range(*ranges[i]))
        return [TensorSpec(tuple(shape), x.dtype)]


@nn_op(
    "nn.pad",
    operands=("x",),
    props={"pads": ("ints", None), "mode": ("str", "constant"), "value": ("float", 0.0)},
)
class PadOp(NNOp):
    """Pad with ONNX ``pads`` (all begins then all ends, non-negative); constant/reflect/edge."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, pads = ins[0], p["pads"]
        _require(len(pads) == 2 * x.rank and min(pads, default=0) >= 0, f"bad pads {pads}")
        _require(p["mode"] in ("constant", "reflect", "edge"), f"bad pad mode {p['mode']!r}")
        shape = tuple(
            d if d == DYNAMIC else d + pads[i] + pads[i + x.rank] for i, d in enumerate(x.shape)
        )
        return [TensorSpec(shape, x.dtype)]


@nn_op("nn.softmax", operands=("x",), props={"axis": ("int", -1)})
class SoftmaxOp(NNOp):
    """Softmax along one axis (opset-13 semantics)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        _axis(p["axis"], ins[0].rank)
        return [ins[0]]


@nn_op("nn.log_softmax", operands=("x",), props={"axis": ("int", -1)})
class LogSoftmaxOp(NNOp):
    """Log of softmax along one axis."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        _axis(p["axis"], ins[0].rank)
        return [ins[0]]


class ReduceOp(NNOp):
    """Base of reductions over sorted non-negative ``axes`` with ``keepdims``."""

    KIND: ClassVar[str] = ""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        axes = [_axis(a, x.rank) for a in p["axes"]]
        _require(len(set(axes)) == len(axes), f"repeated reduce axes {p['axes']}")
        if p["keepdims"]:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [TensorSpec(shape, x.dtype)]


_REDUCE_PROPS = {"axes": ("ints", None), "keepdims": ("int", 1)}


@nn_op("nn.reduce_mean", operands=("x",), props=_REDUCE_PROPS)
class ReduceMeanOp(ReduceOp):
    """Mean over ``axes``."""

    KIND: ClassVar[str] = "mean"


@nn_op("nn.reduce_sum", operands=("x",), props=_REDUCE_PROPS)
class ReduceSumOp(ReduceOp):
    """Sum over ``axes``."""

    KIND: ClassVar[str] = "sum"


@nn_op("nn.reduce_max", operands=("x",), props=_REDUCE_PROPS)
class ReduceMaxOp(ReduceOp):
    """Maximum over ``axes``."""

    KIND: ClassVar[str] = "max"
