"""Dead code elimination: erase pure ops whose results are never used.

Before::

    %1 = "nn.relu"(%0)          // %1 unused
    %2 = "nn.sigmoid"(%0)
    func.return %2

After::

    %2 = "nn.sigmoid"(%0)
    func.return %2

Preconditions: none. Ops are visited in reverse order, so whole dead chains go in one
run. Only ops with the ``Pure`` trait are erased (every nn op except those declared
impure); ``func.return`` and functions are never touched. Model inputs stay even if
unused: they are the ABI.

Numeric contract: exact (erased values were never observed).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.transforms.dead_code_elimination import dce

from nnc.passes.report import record


def _count_ops(module: ModuleOp) -> int:
    return sum(1 for _ in module.walk())


@dataclass(frozen=True)
class DeadCodeEliminationPass(ModulePass):
    """Erase unused pure ops (see module docstring)."""

    name = "dce"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        before = _count_ops(op)
        dce(op)
        removed = before - _count_ops(op)
        record(self.name, f"erased {removed} dead ops" if removed else "nothing to do")
