"""Turn ``matmul(a, B) + bias`` (a Linear layer) into one ``nn.gemm`` with ``c = bias``.

Before (a of rank r >= 2, B a rank-2 constant, bias a constant over the last axis)::

    %y = "nn.matmul"(%a, %B)              : (1x128x256, 256x1024) -> 1x128x1024
    %z = "nn.add"(%y, %bias)              : bias (1024) or (1, 1, 1024) or one element
    %r = "nn.gelu"(%z)                    // optional: one fusable activation

After::

    %a2 = "nn.reshape"(%a) <{shape = [128, 256]}>      // only for r > 2: a free view
    %g  = "nn.gemm"(%a2, %B, %c)                        // c = bias as (1024) or (1)
    %r2 = "nn.gelu"(%g)                                 // sunk past the reshape
    %r  = "nn.reshape"(%r2) <{shape = [1, 128, 1024]}>

The backend aliases reshapes (no copy) and runs gemm on the same micro-kernel as matmul
(which folds a's batch into M the same way), with the bias add in the gemm epilogue;
sinking the activation lets fuse-activation (which runs next) put it in that epilogue
too, so the three ops become one kernel.

Preconditions: f32; B is an ``nn.constant`` of rank 2 (no batch); the matmul result's
only user is the add, whose other operand is an ``nn.constant`` with one value per
output column (or a single value) that does not broadcast the result to a bigger shape;
static shapes. The activation is sunk only when it is the add's only user and its kind
is one fuse-activation fuses (``FUSABLE_ACTIVATIONS``).

Numeric contract: with u = 2**-24, L the activation's Lipschitz constant (1 without one;
see fuse-activation) and ``|a| @ |B|`` the matmul of absolute values, elementwise::

    |after - before| <= 4u * (L * (|a| @ |B| + |bias|) + |before|)

(the bound of fuse-activation's bias fusion: at most the f32 rounding of the matmul
result before the add is skipped). nnc's LLVM backend is in fact bitwise exact here: gemm
runs the same micro-kernel over the same rows as matmul, stores the f32 accumulator and
adds the bias in its epilogue with one rounding, like the separate add; an elementwise
activation commutes with a reshape. Only the float64 reference interpreter, which
rounds gemm once, differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from nnc.ir.ops_compute import GemmOp, MatMulOp
from nnc.ir.ops_elementwise import AddOp, UnaryOp
from nnc.ir.ops_shape import ReshapeOp
from nnc.ir.types import DYNAMIC, shape_of
from nnc.passes._common import Tally, constant_array, erase_if_dead, f32_constant, is_f32, sole_user
from nnc.passes.fuse_activation import FUSABLE_ACTIVATIONS


def _bias_vector(k: np.ndarray, n: int) -> np.ndarray | None:
    """``k`` as a gemm ``c`` of shape (n,) or (1,) if it is one value per column or one
    value in all, else None."""
    if k.size == 1:
        return k.reshape(1)
    if k.ndim >= 1 and k.shape[-1] == n and k.size == n:
        return k.reshape(n)
    return None


@dataclass
class MatMulBiasPattern(RewritePattern):
    """add(matmul(a, B), bias) [-> act] -> [reshape] gemm(a, B, bias) [act] [reshape]."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, add: AddOp, rewriter: PatternRewriter) -> None:
        for mine, other in ((add.lhs, add.rhs), (add.rhs, add.lhs)):
            mm = mine.owner
            if not isinstance(mm, MatMulOp) or sole_user(mine) is not add:
                continue
            if self._rewrite(add, mm, other, rewriter):
                return

    def _rewrite(self, add: AddOp, mm: MatMulOp, bias: SSAValue, rewriter) -> bool:
        a, b = mm.operand_named("a"), mm.operand_named("b")
        if not is_f32(a, b, bias) or add.results[0].type != mm.results[0].type:
            return False
        weights, k = constant_array(b), constant_array(bias)
        if weights is None or weights.ndim != 2 or k is None:
            self.tally.decline(add, "B is not a rank-2 constant or the bias is not constant")
            return False
        out_shape = shape_of(mm.results[0])
        a_shape = shape_of(a)
        if DYNAMIC in out_shape or DYNAMIC in a_shape:
            self.tally.decline(add, "dynamic shape")
            return False
        c = _bias_vector(k, out_shape[-1])
        if c is None:
            self.tally.decline(add, f"bias {k.shape} is not one value per column")
            return False
        new_ops: list[Operation] = []
        if len(a_shape) > 2:
            rows = int(np.prod(a_shape[:-1]))
            flat = ReshapeOp(a, shape=(rows, a_shape[-1]))
            new_ops.append(flat)
            a = flat.results[0]
        c_op = f32_constant(c)
        gemm = GemmOp(a, b, c_op.results[0], beta=1.0)
        gemm.attributes.update(mm.attributes)
        new_ops += [c_op, gemm]
        value, target = gemm.results[0], add
        act = sole_user(add.results[0])
        if (
            len(a_shape) > 2
            and isinstance(act, UnaryOp)
            and act.KIND in FUSABLE_ACTIVATIONS
            and act.results[0].type == add.results[0].type
        ):
            moved = type(act)(value, **act.props_dict())
            moved.attributes.update(act.attributes)
            new_ops.append(moved)
            value, target = moved.results[0], act
        if len(a_shape) > 2:
            new_ops.append(ReshapeOp(value, shape=tuple(out_shape)))
        rewriter.replace(target, new_ops)
        erase_if_dead(rewriter, [mm.results[0], bias] if target is add else [act.x])
        self.tally.did("matmul + bias -> gemm" + ("" if target is add else f" + {act.KIND}"))
        return True


@dataclass(frozen=True)
class MatMulBiasToGemmPass(ModulePass):
    """Fold Linear-layer matmul + bias into gemm (see module docstring)."""

    name = "matmul-bias-to-gemm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        PatternRewriteWalker(MatMulBiasPattern(tally), apply_recursively=False).rewrite_module(op)
        tally.record()
