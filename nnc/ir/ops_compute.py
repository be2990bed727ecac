"""nn ops that do the arithmetic: constants, convolution, dense layers, pooling, norms."""

from __future__ import annotations

from typing import Any

from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec, nn_op
from nnc.ir.shape_rules import ShapeRuleError, window_out
from nnc.ir.types import DYNAMIC, dtype_of_numpy

#: Fused activation epilogue properties shared by conv and gemm. ``activation`` is one
#: of the unary activation kinds ("none", "relu", "leaky_relu", "clip", "sigmoid",
#: "hard_sigmoid", "hard_swish", "tanh", "gelu"); ``act_alpha``/``act_beta`` are its
#: parameters (clip: min/max).
EPILOGUE_PROPS = {
    "activation": ("str", "none"),
    "act_alpha": ("float", 0.0),
    "act_beta": ("float", 0.0),
}

# The window of every 2-D convolution op (float, integer, weight-only): pads are
# (top, left, bottom, right).
CONV_WINDOW_PROPS = {
    "strides": ("ints", (1, 1)),
    "pads": ("ints", (0, 0, 0, 0)),
    "dilations": ("ints", (1, 1)),
    "group": ("int", 1),
}


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


@nn_op("nn.constant", props={"value": ("weight", None)})
class ConstantOp(NNOp):
    """A constant tensor held by reference in a ``#nn.weight`` attribute."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        arr = p["value"].array
        return [TensorSpec(tuple(arr.shape), dtype_of_numpy(arr.dtype))]


@nn_op(
    "nn.conv",
    operands=("x", "w"),
    optional=("bias", "residual"),
    props={**CONV_WINDOW_PROPS, **EPILOGUE_PROPS},
)
class ConvOp(NNOp):
    """2-D convolution, NCHW x (M, C/group, KH, KW) -> NMHW.

    ``pads`` = (top, left, bottom, right). Semantics: ``act(conv(x, w) + bias + residual)``
    where bias (M,) and residual (output-shaped) are optional epilogue operands.
    """

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, w = ins[0], ins[1]
        _require(
            x.rank == 4 and w.rank == 4, f"conv expects rank-4 x and w, got {x.shape}, {w.shape}"
        )
        group = p["group"]
        n, c, h, wd = x.shape
        m, cg, kh, kw = w.shape
        _require(
            group >= 1 and m % group == 0, f"output channels {m} not divisible by group {group}"
        )
        _require(c == DYNAMIC or c == cg * group, f"input channels {c} != {cg}*group {group}")
        _require(
            len(p["pads"]) == 4 and len(p["strides"]) == 2 and len(p["dilations"]) == 2,
            "conv expects 4 pads, 2 strides, 2 dilations",
        )
        t, left, b, r = p["pads"]
        try:
            oh = window_out(h, kh, p["strides"][0], t, b, p["dilations"][0])
            ow = window_out(wd, kw, p["strides"][1], left, r, p["dilations"][1])
        except ShapeRuleError as err:
            raise ShapeError(str(err)) from None
        out = TensorSpec((n, m, oh, ow), x.dtype)
        for extra in ins[2:]:
            _require(extra.shape in ((m,), out.shape), f"conv epilogue operand shape {extra.shape}")
        return [out]


@nn_op(
    "nn.gemm",
    operands=("a", "b"),
    optional=("c",),
    props={
        "trans_a": ("int", 0),
        "trans_b": ("int", 0),
        "alpha": ("float", 1.0),
        "beta": ("float", 1.0),
        **EPILOGUE_PROPS,
    },
)
class GemmOp(NNOp):
    """ONNX Gemm: ``act(alpha * op(a) @ op(b) + beta * c)``, c broadcast to (M, N)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        a, b = ins[0], ins[1]
        _require(
            a.rank == 2 and b.rank == 2, f"gemm expects rank-2 operands, got {a.shape}, {b.shape}"
        )
        m, k = a.shape[::-1] if p["trans_a"] else a.shape
        k2, n = b.shape[::-1] if p["trans_b"] else b.shape
        _require(k == k2 or DYNAMIC in (k, k2), f"gemm inner dims differ: {k} vs {k2}")
        if len(ins) > 2:
            c = ins[2].shape
            _require(
                len(c) <= 2 and all(d in (1, want) for d, want in zip(c[::-1], (n, m))),
                f"gemm bias {c} does not broadcast to ({m}, {n})",
            )
        return [TensorSpec((m, n), a.dtype)]


@nn_op("nn.matmul", operands=("a", "b"))
class MatMulOp(NNOp):
    """numpy.matmul for ranks >= 2 with broadcast batch dimensions."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        from nnc.ir.shape_rules import broadcast

        a, b = ins
        _require(
            a.rank >= 2 and b.rank >= 2, f"matmul expects ranks >= 2, got {a.shape}, {b.shape}"
        )
        _require(a.shape[-1] == b.shape[-2], f"matmul inner dims differ: {a.shape} @ {b.shape}")
        try:
            batch = broadcast(a.shape[:-2], b.shape[:-2])
        except ShapeRuleError as err:
            raise ShapeError(str(err)) from None
        return [TensorSpec(batch + (a.shape[-2], b.shape[-1]), a.dtype)]


@nn_op(
    "nn.batch_norm",
    operands=("x", "scale", "bias", "mean", "var"),
    props={"epsilon": ("float", 1e-5)},
)
class BatchNormOp(NNOp):
    """Inference batch normalization over axis 1: ``(x-mean)/sqrt(var+eps)*scale+bias``."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        _require(x.rank >= 2, f"batch_norm expects rank >= 2, got {x.shape}")
        for s in ins[1:]:
            _require(
                s.shape == (x.shape[1],), f"batch_norm parameter shape {s.shape} != ({x.shape[1]},)"
            )
        return [x]


def _pool_infer(x: TensorSpec, p: dict[str, Any], dilations: tuple[int, int]) -> TensorSpec:
    _require(x.rank == 4, f"pooling expects rank-4 NCHW input, got {x.shape}")
    (kh, kw), (sh, sw) = p["kernel"], p["strides"]
    t, left, b, r = p["pads"]
    try:
        oh = window_out(x.shape[2], kh, sh, t, b, dilations[0], bool(p["ceil_mode"]))
        ow = window_out(x.shape[3], kw, sw, left, r, dilations[1], bool(p["ceil_mode"]))
    except ShapeRuleError as err:
        raise ShapeError(str(err)) from None
    return TensorSpec((x.shape[0], x.shape[1], oh, ow), x.dtype)


_POOL_PROPS = {
    "kernel": ("ints", None),
    "strides": ("ints", (1, 1)),
    "pads": ("ints", (0, 0, 0, 0)),
    "ceil_mode": ("int", 0),
}


@nn_op("nn.max_pool", operands=("x",), props={**_POOL_PROPS, "dilations": ("ints", (1, 1))})
class MaxPoolOp(NNOp):
    """2-D max pooling (pads are -inf; ``ceil_mode`` keeps partial windows)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        return [_pool_infer(ins[0], p, p["dilations"])]


@nn_op("nn.avg_pool", operands=("x",), props={**_POOL_PROPS, "count_include_pad": ("int", 0)})
class AvgPoolOp(NNOp):
    """2-D average pooling; with ``count_include_pad`` explicit pads count as zeros."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        return [_pool_infer(ins[0], p, (1, 1))]


class _GlobalPool(NNOp):
    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        _require(x.rank >= 3, f"global pooling expects rank >= 3, got {x.shape}")
        return [TensorSpec(x.shape[:2] + (1,) * (x.rank - 2), x.dtype)]


@nn_op("nn.global_avg_pool", operands=("x",))
class GlobalAvgPoolOp(_GlobalPool):
    """Mean over all spatial dims, keeping them as size 1."""


@nn_op("nn.global_max_pool", operands=("x",))
class GlobalMaxPoolOp(_GlobalPool):
    """Max over all spatial dims, keeping them as size 1."""


@nn_op(
    "nn.lrn",
    operands=("x",),
    props={
        "size": ("int", None),
        "alpha": ("float", 1e-4),
        "beta": ("float", 0.75),
        "bias": ("float", 1.0),
    },
)
class LRNOp(NNOp):
    """Local response normalization across channels (ONNX LRN)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        _require(ins[0].rank >= 3, f"lrn expects rank >= 3, got {ins[0].shape}")
        return [ins[0]]


@nn_op(
    "nn.layer_norm",
    operands=("x", "scale"),
    optional=("bias",),
    props={"axis": ("int", -1), "epsilon": ("float", 1e-5)},
)
class LayerNormOp(NNOp):
    """Normalize over dims [axis, rank) then ``* scale + bias`` (shape x.shape[axis:])."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x = ins[0]
        axis = p["axis"] % x.rank if -x.rank <= p["axis"] < x.rank else None
        _require(axis is not None, f"layer_norm axis {p['axis']} out of range for rank {x.rank}")
        for s in ins[1:]:
            _require(
                s.shape == x.shape[axis:], f"layer_norm parameter {s.shape} != {x.shape[axis:]}"
            )
        return [x]
