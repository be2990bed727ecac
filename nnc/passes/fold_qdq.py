"""Fold quantize/dequantize round trips between integer ops.

Before::

    %y  = "nn.dequantize"(%a) <{scale = s1, zero_point = z1}>        // a: u8/i8
    %r  = "nn.reshape"(%y) <{shape = ...}>                             // optional, any number
    %q  = "nn.quantize"(%r) <{scale = s2, zero_point = z2, dtype = d}>

After, when (s1, z1, dtype of a) == (s2, z2, d)::

    %r = "nn.reshape"(%a)                                               // integer reshape
    (uses of %q now use %r)

and otherwise (different per-tensor parameters)::

    %q = "nn.requantize"(%r') <{x_scale = s1, x_zp = z1, y_scale = s2, y_zp = z2, dtype = d}>

Reshapes, transposes and max pools between the pair are moved onto the integer tensor
(they only move data or pick a maximum: ``max(dequantize(q)) == dequantize(max(q))``
exactly, for a positive scale). Only per-tensor parameters are folded; dequantize ops
left without users are erased.

A global average pool island (movers allowed after the pool)::

    %y = "nn.dequantize"(%a);  %p = "nn.global_avg_pool"(%y);  %q = "nn.quantize"(%p)

becomes ``%q = "nn.qglobal_avg_pool"(%a) <{x_scale = s1, x_zp = z1, y_scale = s2,
y_zp = z2, dtype = d}>`` (exact integer sum, one rounding; the float island rounded the
mean once too, so the two differ by at most one output step).

Preconditions: both ops per-tensor; the dequantized value is i8/u8; only reshape and
transpose / max_pool ops in between, whatever their other users (they are duplicated
onto the integer tensor; the float ones stay while used).

Numeric contract: equal parameters: exact (quantize(dequantize(q)) == q whenever the
parameters are equal, since f32(q - z) * s / s rounds back to q - z for |q - z| <= 255).
Different parameters: the requantize rounds once where the pair rounded once, with the
multiplier f32(s1)/f32(s2) instead of two float steps, so results differ by at most one
quantization step of the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from nnc.ir.builder import main_func
from nnc.ir.ops_compute import GlobalAvgPoolOp, MaxPoolOp
from nnc.ir.ops_quant import DequantizeOp, QGlobalAvgPoolOp, QuantizeOp, RequantizeOp
from nnc.ir.ops_shape import ReshapeOp, TransposeOp
from nnc.ir.types import dtype_of
from nnc.passes._common import Tally

#: Ops that commute with per-tensor (de)quantization: they move data, or (max pool) pick
#: a maximum, which a monotone map with a positive scale preserves.
_MOVERS = (ReshapeOp, TransposeOp, MaxPoolOp)


def _per_tensor(op: Operation) -> tuple[float, int] | None:
    s, z = op.prop("scale").array, op.prop("zero_point").array
    if s.size != 1 or s.ndim > 1:
        return None
    return float(s.reshape(())), int(z.reshape(()))


def _rebuild_chain(chain: list[Operation], start: SSAValue) -> list[Operation]:
    """Copies of the reshape/transpose ``chain`` applied to ``start`` (integer data)."""
    out, value = [], start
    for op in chain:
        new = type(op)(value, **op.props_dict())
        out.append(new)
        value = new.results[0]
    return out


@dataclass(frozen=True)
class FoldQDQPass(ModulePass):
    """Remove dequantize -> (reshape|transpose)* -> quantize round trips (see docstring)."""

    name = "fold-qdq"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        block = main_func(op).body.blocks[0]
        for q in list(block.ops):
            if not isinstance(q, QuantizeOp) or q.parent is None:
                continue
            chain: list[Operation] = []
            v = q.x
            while isinstance(v.owner, _MOVERS):
                chain.insert(0, v.owner)
                v = v.owner.operands[0]
            pool = v.owner if isinstance(v.owner, GlobalAvgPoolOp) else None
            if pool is not None:
                v = pool.operands[0]
            dq = v.owner
            if not isinstance(dq, DequantizeOp):
                continue
            pin, pout = _per_tensor(dq), _per_tensor(q)
            if pin is None or pout is None:
                tally.decline(q, "per-channel/per-group parameters")
                continue
            src = dq.x
            if dtype_of(src) not in ("i8", "u8"):
                tally.decline(q, "dequantized value is not i8/u8")
                continue
            if pool is not None:
                qpool = QGlobalAvgPoolOp(
                    src, x_scale=float(np.float32(pin[0])), x_zp=pin[1],
                    y_scale=float(np.float32(pout[0])), y_zp=pout[1], dtype=q.prop("dtype"),
                )  # fmt: skip
                new = [qpool, *_rebuild_chain(chain, qpool.results[0])]
                what = "replaced dequantize/global_avg_pool/quantize by qglobal_avg_pool"
            elif pin == pout and dtype_of(src) == q.prop("dtype"):
                new = _rebuild_chain(chain, src)
                what = "removed dequantize/quantize pair"
            else:
                new = _rebuild_chain(chain, src)
                last = new[-1].results[0] if new else src
                new.append(
                    RequantizeOp(
                        last,
                        x_scale=float(np.float32(pin[0])),
                        x_zp=pin[1],
                        y_scale=float(np.float32(pout[0])),
                        y_zp=pout[1],
                        dtype=q.prop("dtype"),
                    )
                )
                what = "replaced dequantize/quantize pair by requantize"
            if not new:
                q.results[0].replace_all_uses_with(src)
            else:
                block.insert_ops_before(new, q)
                q.results[0].replace_all_uses_with(new[-1].results[0])
            q.detach()
            q.erase()
            for dead in reversed([dq, *([pool] if pool else []), *chain]):
                if dead.parent is not None and all(not r.uses for r in dead.results):
                    dead.detach()
                    dead.erase()
            tally.did(what)
        tally.record()
