"""Helpers for the weight-compression passes (prune, low-rank, cluster, sparse kernels).

Not a pass. A *weight layer* is an ``nn.conv`` (operand ``w``), ``nn.gemm`` (operand
``b``) or ``nn.matmul`` (rank-2 operand ``b``) whose weight is an f32 ``nn.constant``.
``as_rows`` views a weight as a 2-D (output rows, reduction) matrix and ``from_rows``
undoes it; ``replace_weight`` swaps the constant (every user of a shared constant sees
the new one) and can attach discardable attributes (masks, codebooks) to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Attribute, Operation
from xdsl.rewriter import Rewriter

from nnc.ir import ops_compute as oc
from nnc.ir.builder import main_func
from nnc.ir.types import dtype_of
from nnc.report import layer_name

#: Discardable attribute on a pruned weight constant: uint8 mask, 1 = kept, 0 = pruned.
MASK_ATTR = "nn.prune_mask"


@dataclass
class WeightLayer:
    """A consumer op, its weight operand's name and the constant op defining it."""

    op: Operation
    operand: str
    const: oc.ConstantOp

    @property
    def array(self) -> np.ndarray:
        return self.const.prop("value").array

    @property
    def name(self) -> str:
        return layer_name(self.op) or f"{self.op.name}#{id(self.op) % 10000}"


def weight_layers(module: ModuleOp, kinds: tuple[type, ...] | None = None) -> list[WeightLayer]:
    """Every weight layer of ``main`` in program order; a shared constant is listed once."""
    kinds = kinds or (oc.ConvOp, oc.GemmOp, oc.MatMulOp)
    seen: set[int] = set()
    out = []
    for op in main_func(module).body.blocks[0].ops:
        if not isinstance(op, kinds):
            continue
        name = "w" if isinstance(op, oc.ConvOp) else "b"
        value = op.operand_named(name)
        const = value.owner
        if not isinstance(const, oc.ConstantOp) or dtype_of(value) != "f32":
            continue
        if isinstance(op, oc.MatMulOp) and const.prop("value").array.ndim != 2:
            continue
        if id(const) in seen:
            continue
        seen.add(id(const))
        out.append(WeightLayer(op, name, const))
    return out


def as_rows(layer: WeightLayer, channels_last: bool = False) -> np.ndarray:
    """The weight as (output rows, reduction): conv (M, C*KH*KW) (``channels_last``:
    (M, KH*KW*C)), gemm/matmul (N, K). A copy in float32."""
    w = layer.array
    if isinstance(layer.op, oc.ConvOp):
        w = w.transpose(0, 2, 3, 1) if channels_last else w
        return np.array(w.reshape(w.shape[0], -1))
    if isinstance(layer.op, oc.GemmOp) and layer.op.prop("trans_b"):
        return np.array(w)
    return np.array(w.T)


def from_rows(layer: WeightLayer, rows: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """Inverse of ``as_rows``: back to the layer's weight layout."""
    w = layer.array
    if isinstance(layer.op, oc.ConvOp):
        if channels_last:
            m, c, kh, kw = w.shape
            return rows.reshape(m, kh, kw, c).transpose(0, 3, 1, 2)
        return rows.reshape(w.shape)
    if isinstance(layer.op, oc.GemmOp) and layer.op.prop("trans_b"):
        return rows
    return rows.T


def replace_weight(
    layer: WeightLayer, array: np.ndarray, attrs: dict[str, Attribute] | None = None
) -> oc.ConstantOp:
    """Replace the layer's constant by one holding ``array`` (f32), with ``attrs``."""
    new = oc.ConstantOp(value=np.ascontiguousarray(array, dtype=np.float32))
    for key, attr in layer.const.attributes.items():
        new.attributes[key] = attr
    for key, attr in (attrs or {}).items():
        new.attributes[key] = attr
    Rewriter.replace_op(layer.const, new)
    layer.const = new
    return new


def masks(module: ModuleOp) -> dict[str, np.ndarray]:
    """The fine-tuning hook: layer name -> boolean keep-mask (weight layout) of every
    weight a pruning pass zeroed. A fine-tuner multiplies gradients (or weights after
    each step) by the mask so pruned weights stay exactly zero."""
    out = {}
    for layer in weight_layers(module):
        attr = layer.const.attributes.get(MASK_ATTR)
        if attr is not None:
            out[layer.name] = attr.array.astype(bool)
    return out


def is_sparse_candidate(op: Operation) -> bool:
    """Gemm with ``trans_a=0`` or a 1x1 stride-1 unpadded ungrouped conv (a gemm per pixel)."""
    if isinstance(op, oc.GemmOp):
        return not op.prop("trans_a") and op.prop("alpha") == 1.0
    if isinstance(op, oc.ConvOp):
        w = op.operand_named("w")
        from nnc.ir.types import shape_of

        return (
            tuple(shape_of(w)[2:]) == (1, 1)
            and op.prop("group") == 1
            and op.prop("strides") == (1, 1)
            and op.prop("pads") == (0, 0, 0, 0)
        )
    return False
