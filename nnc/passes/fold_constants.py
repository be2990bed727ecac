"""Constant folding: evaluate ops whose operands are all constants.

Before::

    %a = "nn.constant"() <{value = #nn.weight<"f32", [2, 3], "0x...">}>
    %t = "nn.transpose"(%a) <{perm = array<i64: 1, 0>}>
    %y = "nn.matmul"(%x, %t)

After::

    %t = "nn.constant"() <{value = #nn.weight<"f32", [3, 2], "0x...">}>
    %y = "nn.matmul"(%x, %t)

Any pure nn op with at least one operand, all of them ``nn.constant``, is evaluated with
the reference interpreter (``nnc.ir.interpret.evaluate_op``) and replaced by one
``nn.constant`` per result; operand constants left unused are erased. Folding repeats
until no op qualifies, so whole constant subgraphs collapse.

Preconditions: the op is pure, has an interpreter implementation, and its results hold
at most ``max-elements`` elements each.

Options: ``max-elements`` bounds the size of a folded result (folding a broadcast can
turn a small constant into a large one that would bloat the binary); bigger results are
left unfolded and reported.

Numeric contract: exact by construction: the folded value is what the interpreter (the
oracle) computes for the op.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.traits import Pure

from nnc.errors import InvalidOptionError
from nnc.ir.interpret import evaluate_op
from nnc.ir.nn_base import NNOp
from nnc.ir.ops_compute import ConstantOp
from nnc.ir.types import num_elements, shape_of
from nnc.passes._common import Tally, constant_array, erase_if_dead


@dataclass
class FoldConstantOpPattern(RewritePattern):
    """Replace an nn op with all-constant operands by the constants it computes."""

    tally: Tally
    max_elements: int

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, ConstantOp) or not isinstance(op, NNOp) or not op.has_trait(Pure):
            return
        arrays = [constant_array(v) for v in op.operands]
        if not arrays or any(a is None for a in arrays):
            return
        if any(num_elements(shape_of(r)) > self.max_elements for r in op.results):
            self.tally.decline(op, f"result larger than max-elements={self.max_elements}")
            return
        try:
            results = evaluate_op(op, arrays)
        except NotImplementedError as err:
            self.tally.decline(op, str(err))
            return
        new_ops = [ConstantOp(value=arr) for arr in results]
        if [c.results[0].type for c in new_ops] != [r.type for r in op.results]:
            return
        operands = list(op.operands)
        rewriter.replace(op, new_ops, [c.results[0] for c in new_ops])
        erase_if_dead(rewriter, operands)
        self.tally.did(f"folded {op.name}")


@dataclass(frozen=True)
class FoldConstantsPass(ModulePass):
    """Evaluate all-constant ops at compile time (see module docstring)."""

    name = "fold-constants"

    max_elements: int = 1 << 24
    """Largest folded result, in elements; bigger results stay as ops."""

    def __post_init__(self) -> None:
        if self.max_elements < 0:
            raise InvalidOptionError(
                f"{self.name}: max-elements must be >= 0, got {self.max_elements}"
            )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        PatternRewriteWalker(FoldConstantOpPattern(tally, self.max_elements)).rewrite_module(op)
        tally.record()
