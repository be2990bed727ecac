"""Fold a per-channel constant multiply into the convolution that feeds it.

Before::

    %y = "nn.conv"(%x, %w, %b)          // activation "none", no residual
    %z = "nn.mul"(%y, %k)               // %k: nn.constant, one value per output channel

After::

    %z = "nn.conv"(%x, %w2, %b2)

Math, per output channel m: ``(conv(x, w) + b)[m] * k[m] = conv(x, w * k[m])[m] + b[m] * k[m]``,
so ``w2[m] = w[m] * k[m]`` and ``b2[m] = b[m] * k[m]`` (no bias stays no bias). ``%k``
may have any shape that broadcasts along the channel axis only: (M,1,1), (1,M,1,1), or a
single value (1,), () (numpy broadcasting aligns (M,) with the width axis, not channels).

Preconditions (otherwise unchanged): the conv result's only user is the mul; ``%w``,
``%b`` (if present) and ``%k`` are ``nn.constant``; the conv has no fused activation or
residual; all f32.

Numeric contract: exact in real arithmetic; the scaled weights are rounded once to
float32, so elementwise, with u = 2**-24::

    |after - before| <= 4u * (|k| * (|W| (*) |X| + |b|) + |before|)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from nnc.ir.ops_compute import ConvOp
from nnc.ir.ops_elementwise import MulOp
from nnc.ir.types import shape_of
from nnc.passes._common import (
    Tally,
    constant_array,
    erase_if_dead,
    f32_constant,
    is_f32,
    per_channel,
    sole_user,
)


def _scaled_conv(conv: ConvOp, k: np.ndarray) -> list | None:
    """[new weight, (new bias), new conv] computing conv * k, or None if not foldable."""
    w = constant_array(conv.w)
    bias = conv.operand_named("bias")
    b = None if bias is None else constant_array(bias)
    if w is None or (bias is not None and b is None):
        return None
    w2 = f32_constant(w.astype(np.float64) * k.reshape(-1, 1, 1, 1))
    b2 = None if b is None else f32_constant(b.astype(np.float64) * k)
    new = ConvOp(conv.x, w2, b2, None, **conv.props_dict())
    return [w2, new] if b2 is None else [w2, b2, new]


@dataclass
class FoldMulIntoConvPattern(RewritePattern):
    """mul(conv, per-channel constant) -> conv with scaled weights and bias."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, mul: MulOp, rewriter: PatternRewriter) -> None:
        for mine, other in ((mul.lhs, mul.rhs), (mul.rhs, mul.lhs)):
            conv = mine.owner
            if not isinstance(conv, ConvOp) or not is_f32(mine, other):
                continue
            if sole_user(mine) is not mul or conv.prop("activation") != "none":
                self.tally.decline(mul, "conv output has other users or an activation")
                continue
            k = constant_array(other)
            k = None if k is None else per_channel(k, shape_of(mine))
            if k is None or conv.operand_named("residual") is not None:
                continue
            new_ops = _scaled_conv(conv, k)
            if new_ops is None or new_ops[-1].results[0].type != mul.results[0].type:
                continue
            old_operands = list(conv.operands)
            rewriter.replace(mul, new_ops)
            erase_if_dead(rewriter, [mine, other, *old_operands])
            self.tally.did("folded mul into conv")
            return


@dataclass(frozen=True)
class FoldMulIntoConvPass(ModulePass):
    """Scale conv weights by a following per-channel constant mul (see module docstring)."""

    name = "fold-mul-into-conv"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        PatternRewriteWalker(FoldMulIntoConvPattern(tally)).rewrite_module(op)
        tally.record()
