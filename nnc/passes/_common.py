"""Helpers shared by several passes (not a pass: no registry entry)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.transforms.dead_code_elimination import is_trivially_dead

from nnc.ir.ops_compute import ConstantOp
from nnc.ir.types import DYNAMIC, dtype_of
from nnc.passes.report import record


def constant_array(value: SSAValue) -> np.ndarray | None:
    """The array of ``value`` if an ``nn.constant`` defines it, else None."""
    owner = value.owner
    return owner.prop("value").array if isinstance(owner, ConstantOp) else None


def sole_user(value: SSAValue) -> Operation | None:
    """The operation using ``value``, if exactly one use exists (else None)."""
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def is_f32(*values: SSAValue) -> bool:
    """True when every value is an f32 tensor."""
    return all(dtype_of(v) == "f32" for v in values)


def f32_constant(array: np.ndarray) -> ConstantOp:
    """An ``nn.constant`` holding ``array`` rounded once to float32."""
    return ConstantOp(value=np.ascontiguousarray(array, dtype=np.float32))


def erase_if_dead(rewriter: PatternRewriter, values: Iterable[SSAValue]) -> None:
    """Erase the pure ops defining ``values`` that a rewrite left unused, transitively.

    Only ops that became dead are touched; unrelated dead code stays (that is dce's job).
    """
    stack = [v.owner for v in values if isinstance(v.owner, Operation)]
    while stack:
        op = stack.pop()
        if op.parent is None or not is_trivially_dead(op):
            continue
        operands = list(op.operands)
        rewriter.erase(op)
        stack.extend(v.owner for v in operands if isinstance(v.owner, Operation))


def per_channel(array: np.ndarray, out_shape: Sequence[int], axis: int = 1) -> np.ndarray | None:
    """View ``array`` as one value per channel of ``out_shape[axis]``, if it broadcasts so.

    ``array`` qualifies when, right-aligned against ``out_shape`` (numpy broadcasting),
    every dim except ``axis`` is 1 and the ``axis`` dim is 1 or the channel count:
    shapes (C, 1, 1), (1, C, 1, 1), (1,), () for a rank-4 NCHW output ((C,) would scale
    the last axis), and (C,) for a rank-2 one. Returns a float64 vector of length C, or
    None.
    """
    rank, channels = len(out_shape), out_shape[axis]
    if array.ndim > rank or channels == DYNAMIC:
        return None
    shape = (1,) * (rank - array.ndim) + tuple(array.shape)
    if shape[axis] not in (1, channels) or any(d != 1 for i, d in enumerate(shape) if i != axis):
        return None
    return np.broadcast_to(array.astype(np.float64).reshape(shape[axis]), (channels,))


@dataclass
class Tally:
    """Counts what a pass did and, per op it declined, why; reports both at the end."""

    pass_name: str
    done: Counter[str] = field(default_factory=Counter)
    declined: dict[Operation, str] = field(default_factory=dict)

    def did(self, what: str) -> None:
        """One rewrite of kind ``what`` happened."""
        self.done[what] += 1

    def decline(self, op: Operation, why: str) -> None:
        """``op`` looked like a candidate but the rewrite does not apply, because ``why``."""
        self.declined[op] = why

    def record(self) -> None:
        """Write the summary to the active pass report."""
        for what, n in self.done.items():
            record(self.pass_name, f"{what}: {n}")
        reasons = Counter(why for op, why in self.declined.items() if op.parent is not None)
        for why, n in reasons.items():
            record(self.pass_name, f"not applied ({n}x): {why}")
        if not self.done and not reasons:
            record(self.pass_name, "nothing to do")
