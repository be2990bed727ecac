"""Algebraic identities that remove data-movement and no-op arithmetic.

Before::

    %1 = "nn.transpose"(%0) <{perm = array<i64: 1, 2, 0>}>
    %2 = "nn.transpose"(%1) <{perm = array<i64: 2, 0, 1>}>
    %3 = "nn.add"(%2, %zeros)

After::

    (uses of %3 use %0)

Rewrites (each replaces the matched op; ops it leaves unused are erased)::

    reshape(reshape(%x, s1), s2)      ->  reshape(%x, s2)
    reshape(%x, s) : T -> T           ->  %x                      (result type == input type)
    transpose(%x, [0, 1, ..., n-1])   ->  %x
    transpose(transpose(%x, p), q)    ->  transpose(%x, [p[q[i]] for i])   (or %x if identity)
    %x + 0, 0 + %x, %x - 0            ->  %x    (0: an nn.constant of all zeros)
    %x * 1, 1 * %x, %x / 1            ->  %x    (1: an nn.constant of all ones)

Preconditions: the arithmetic identities apply only when the result type equals the
type of ``%x`` (the constant must not broadcast ``%x`` to a bigger shape or change its
dtype). Pre-existing dead code is left alone (run ``dce``).

Numeric contract: exact. (``-0.0 + 0`` is ``+0.0`` while ``%x`` is ``-0.0``: equal as
numbers; everything else is bitwise identical.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from nnc.ir.ops_elementwise import AddOp, BinaryOp, DivOp, MulOp, SubOp
from nnc.ir.ops_shape import ReshapeOp, TransposeOp
from nnc.passes._common import Tally, constant_array, erase_if_dead


def _forward(rewriter: PatternRewriter, op, value: SSAValue) -> None:
    """Replace ``op``'s result by ``value`` and drop what became dead."""
    operands = list(op.operands)
    rewriter.replace(op, [], [value])
    erase_if_dead(rewriter, operands)


@dataclass
class ReshapePattern(RewritePattern):
    """Drop identity reshapes; collapse reshape chains into one reshape."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ReshapeOp, rewriter: PatternRewriter) -> None:
        if op.x.type == op.results[0].type:
            _forward(rewriter, op, op.x)
            self.tally.did("removed identity reshape")
            return
        inner = op.x.owner
        if isinstance(inner, ReshapeOp):
            new = ReshapeOp(inner.x, shape=op.prop("shape"))
            if new.results[0].type != op.results[0].type:
                return
            rewriter.replace(op, new)
            erase_if_dead(rewriter, [inner.results[0]])
            self.tally.did("collapsed reshape chain")


@dataclass
class TransposePattern(RewritePattern):
    """Drop identity transposes; compose transpose chains."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: TransposeOp, rewriter: PatternRewriter) -> None:
        perm = op.prop("perm")
        if list(perm) == list(range(len(perm))):
            _forward(rewriter, op, op.x)
            self.tally.did("removed identity transpose")
            return
        inner = op.x.owner
        if not isinstance(inner, TransposeOp):
            return
        first = inner.prop("perm")
        composed = [first[i] for i in perm]
        if composed == list(range(len(composed))):
            _forward(rewriter, op, inner.x)
        else:
            rewriter.replace(op, TransposeOp(inner.x, perm=composed))
            erase_if_dead(rewriter, [inner.results[0]])
        self.tally.did("composed transpose chain")


#: op type -> (neutral element, may the constant be on the left?)
_NEUTRAL: dict[type[BinaryOp], tuple[int, bool]] = {
    AddOp: (0, True),
    SubOp: (0, False),
    MulOp: (1, True),
    DivOp: (1, False),
}


@dataclass
class NeutralOperandPattern(RewritePattern):
    """x + 0, x - 0, x * 1, x / 1 (and 0 + x, 1 * x) -> x."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: BinaryOp, rewriter: PatternRewriter) -> None:
        if type(op) not in _NEUTRAL:
            return
        neutral, commutes = _NEUTRAL[type(op)]
        candidates = [(op.lhs, op.rhs)] + ([(op.rhs, op.lhs)] if commutes else [])
        for kept, const in candidates:
            k = constant_array(const)
            if k is not None and kept.type == op.results[0].type and np.all(k == neutral):
                _forward(rewriter, op, kept)
                self.tally.did(f"removed {op.name} of {neutral}")
                return


@dataclass(frozen=True)
class CanonicalizePass(ModulePass):
    """Apply the algebraic identities in the module docstring until none applies."""

    name = "canonicalize"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        patterns = [ReshapePattern(tally), TransposePattern(tally), NeutralOperandPattern(tally)]
        walker = PatternRewriteWalker(GreedyRewritePatternApplier(patterns, dce_enabled=False))
        walker.rewrite_module(op)
        tally.record()
