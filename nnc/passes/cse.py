"""Common subexpression elimination for the single-block nn graph.

Before::

    %a = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x...">}>
    %b = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x...">}>   // same bytes
    %1 = "nn.add"(%x, %a)
    %2 = "nn.add"(%x, %b)

After::

    %a = "nn.constant"() <{value = #nn.weight<"f32", [2], "0x...">}>
    %1 = "nn.add"(%x, %a)

Preconditions: none. Two pure ops are the same expression when they have the same name, properties,
attributes, operands (the same SSA values, in order) and result types. Constants
compare by content: ``#nn.weight`` equality is dtype + shape + blake2b digest of the
bytes, so equal tensors merge even when they came from different initializers. Ops are
visited in block order, so one run merges whole duplicated subgraphs. Later duplicates
are replaced by the first occurrence and erased.

Numeric contract: exact (pure ops on equal inputs give equal outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.traits import Pure

from nnc.passes.report import record


def _key(op: Operation) -> tuple:
    """What makes two ops the same expression (regions are not supported: never merged)."""
    return (
        op.name,
        tuple(sorted(op.properties.items())),
        tuple(sorted(op.attributes.items())),
        tuple(op.operands),
        tuple(r.type for r in op.results),
    )


def cse_block(block: Block) -> int:
    """Merge duplicate pure ops of ``block``; returns how many were erased."""
    seen: dict[tuple, Operation] = {}
    merged = 0
    for op in list(block.ops):
        if op.regions or not op.has_trait(Pure):
            continue
        key = _key(op)
        first = seen.setdefault(key, op)
        if first is op:
            continue
        for old, new in zip(op.results, first.results, strict=True):
            old.replace_all_uses_with(new)
        Rewriter.erase_op(op)
        merged += 1
    return merged


@dataclass(frozen=True)
class CommonSubexpressionEliminationPass(ModulePass):
    """Merge duplicate pure ops and equal constants (see module docstring)."""

    name = "cse"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        blocks = [b for inner in op.walk() for r in inner.regions for b in r.blocks]
        merged = sum(cse_block(block) for block in blocks)
        record(self.name, f"merged {merged} duplicate ops" if merged else "nothing to do")
