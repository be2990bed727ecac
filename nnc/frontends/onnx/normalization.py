"""ONNX normalizations -> ``nn.batch_norm`` / ``nn.layer_norm`` / ``nn.lrn``.

* BatchNormalization (inference only; ``training_mode=1`` and the extra outputs are
  unsupported). Per-channel parameters of shape (C,) map to ``nn.batch_norm``. The old
  ``spatial=0`` form with parameters of shape (C, D1, ...) is folded, when the parameters
  are constants, into ``x * a + b`` with ``a = scale / sqrt(var + eps)``,
  ``b = bias - mean * a``.
* LayerNormalization (opset 17+): a scale/bias that only broadcasts to
  ``x.shape[axis:]`` is expanded when constant, otherwise applied with nn.mul/nn.add
  after a unit-scale layer norm. The Mean/InvStdDev outputs are unsupported.
* InstanceNormalization: a layer norm over the spatial dims, then per-channel scale/bias.
* LRN: size, alpha, beta, bias.
"""

from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter
from nnc.ir import ops_elementwise as ew
from nnc.ir.ops_compute import BatchNormOp, LayerNormOp, LRNOp
from nnc.ir.types import DYNAMIC


@converter("BatchNormalization")
def convert_batch_norm(node: NodeContext) -> list[Output]:
    """BatchNormalization(X, scale, B, mean, var) in inference mode."""
    if int(node.attr("training_mode", 0)) != 0:
        raise node.bad_attr(
            "training_mode",
            node.attr("training_mode"),
            "only inference batch normalization is supported",
        )
    eps = float(node.attr("epsilon", 1e-5))
    xs = node.spec(0)
    channels = (xs.shape[1],) if xs.rank >= 2 else None
    if all(node.spec(i).shape == channels for i in range(1, 5)):
        operands = [node.input(i) for i in range(5)]
        return [node.insert(BatchNormOp(*operands, epsilon=eps))]
    params = [node.known(i) for i in range(1, 5)]
    if any(p is None for p in params):
        raise node.error(
            f"parameters of shape {node.spec(1).shape} (spatial=0 form) "
            "must be compile-time constants"
        )
    scale, bias, mean, var = (p.astype(np.float64) for p in params)
    a = scale / np.sqrt(var + eps)
    b = bias - mean * a
    y = node.insert(ew.MulOp(node.input(0), node.constant(a.astype(np.float32))))
    return [node.insert(ew.AddOp(y, node.constant(b.astype(np.float32))))]


def _affine_param(node: NodeContext, i: int, want: tuple[int, ...], fill: float):
    """(operand for layer_norm, or None; leftover operand to apply after, or None)."""
    if not node.has_input(i):
        return (node.constant(np.full(want, fill, np.float32)) if fill else None), None
    shape = node.spec(i).shape
    if shape == want:
        return node.input(i), None
    known = node.known(i)
    if known is not None and DYNAMIC not in want:
        return node.constant(np.broadcast_to(known.astype(np.float32), want).copy()), None
    return (node.constant(np.full(want, fill, np.float32)) if fill else None), node.input(i)


@converter("LayerNormalization", opsets=(17, 21))
def convert_layer_norm(node: NodeContext) -> list[Output]:
    """LayerNormalization(X, Scale, B?) over dims [axis, rank)."""
    xs = node.spec(0)
    axis = int(node.attr("axis", -1))
    if not -xs.rank <= axis < xs.rank:
        raise node.bad_attr("axis", axis, f"out of range for rank {xs.rank}")
    want = xs.shape[axis % xs.rank :]
    if DYNAMIC in want and node.spec(1).shape != want:
        raise node.error("normalized dims are dynamic and the scale does not match them")
    scale, late_scale = _affine_param(node, 1, want, 1.0)
    bias, late_bias = _affine_param(node, 2, want, 0.0)
    if late_scale is not None and bias is not None:  # bias must be added after the scale
        late_bias, bias = node.input(2), None
    y = node.insert(
        LayerNormOp(
            node.input(0), scale, bias, axis=axis, epsilon=float(node.attr("epsilon", 1e-5))
        )
    )
    if late_scale is not None:
        y = node.insert(ew.MulOp(y, late_scale))
    if late_bias is not None:
        y = node.insert(ew.AddOp(y, late_bias))
    return [y]


@converter("InstanceNormalization")
def convert_instance_norm(node: NodeContext) -> list[Output]:
    """InstanceNormalization(X, scale, B): per (n, c) normalization over spatial dims."""
    xs = node.spec(0)
    if xs.rank < 3 or DYNAMIC in xs.shape[2:]:
        raise node.error(f"input shape {xs.shape} needs rank >= 3 and static spatial dims")
    ones = node.constant(np.ones(xs.shape[2:], np.float32))
    y = node.insert(
        LayerNormOp(node.input(0), ones, None, axis=2, epsilon=float(node.attr("epsilon", 1e-5)))
    )
    per_channel = (xs.shape[1],) + (1,) * (xs.rank - 2)
    scale = _channel_param(node, 1, per_channel)
    bias = _channel_param(node, 2, per_channel)
    return [node.insert(ew.AddOp(node.insert(ew.MulOp(y, scale)), bias))]


def _channel_param(node: NodeContext, i: int, shape: tuple[int, ...]) -> SSAValue:
    known = node.known(i)
    if known is not None:
        return node.constant(known.astype(np.float32).reshape(shape))
    return node.reshape(node.input(i), shape)


@converter("LRN")
def convert_lrn(node: NodeContext) -> list[Output]:
    """Local response normalization across channels."""
    size = node.attr("size")
    if size is None or int(size) < 1:
        raise node.bad_attr("size", size, "a positive size is required")
    return [
        node.insert(
            LRNOp(
                node.input(0),
                size=int(size),
                alpha=float(node.attr("alpha", 1e-4)),
                beta=float(node.attr("beta", 0.75)),
                bias=float(node.attr("bias", 1.0)),
            )
        )
    ]
