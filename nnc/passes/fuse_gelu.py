"""Fuse decomposed GELU chains into one ``nn.gelu`` / ``nn.gelu_tanh`` op.

Exporters (torch.onnx before opset 20, TF) write GELU as five or more elementwise ops.

Before (exact form; the products may be associated and ordered any way, ``/ c`` may be
``* (1/c)``, ``0.5 *`` may be ``/ 2``)::

    %t = "nn.div"(%x, %sqrt2)        %e = "nn.erf"(%t)       %s = "nn.add"(%e, %one)
    %p = "nn.mul"(%x, %s)            %y = "nn.mul"(%p, %half)

Tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``x^3`` as
``nn.pow(x, 3)`` or ``x*x*x``).

After::

    %y = "nn.gelu"(%x)               (tanh form: "nn.gelu_tanh"(%x))

so that fuse-activation can move it into the preceding conv/gemm epilogue.

Preconditions: f32; every constant is a one-element tensor within a relative 1e-6 of its
nominal value (0.5, 1, 1/sqrt 2 or sqrt 2, sqrt(2/pi), 0.044715, 3) and does not
broadcast the result beyond ``x``'s shape; every intermediate value of the chain has
exactly one user (``x`` itself may have any number).

Numeric contract: with u = 2**-24, elementwise on the chain's output ``before``::

    |after - before| <= 8u * |x| + 4u * |before|

Derivation (exact form): the chain rounds x/sqrt2 (and the constant) to f32, perturbing
erf by at most 1.13 * 0.43 * 2u ~ 1u; rounding erf and 1+erf adds 3u absolute to the
factor (1 + erf) <= 2, which the outer products scale by |x|/2; the products add
2u * |before|. A single fused evaluation differs from exact GELU by u * |before| (plus a
few ulp of the backend's erf/tanh), so 2u|x| + 3u|before| is typical; the bound leaves a
2x margin for the backend's approximations. For x << 0 the chain cancels in 1 + erf
while the fused op does not, so there ``after`` is the more accurate one. The tanh form
has the same structure (tanh' <= 1, the constants round like sqrt2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

from nnc.ir.ops_elementwise import (
    AddOp,
    BinaryOp,
    DivOp,
    ErfOp,
    GeluOp,
    GeluTanhOp,
    MulOp,
    PowOp,
    TanhOp,
)
from nnc.passes._common import Tally, constant_array, erase_if_dead, is_f32, sole_user

#: Relative tolerance on the chain's constants (f32 rounding is 6e-8).
RTOL = 1e-6


def _scalar(value: SSAValue) -> float | None:
    """The value of a one-element f32 constant, else None."""
    array = constant_array(value)
    if array is None or array.size != 1 or not is_f32(value):
        return None
    return float(array.reshape(()))


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= RTOL * abs(want)


def _product(value: SSAValue, root: Operation | None = None) -> tuple[float, list[SSAValue]]:
    """``value`` as ``coefficient * prod(factors)`` through nn.mul and nn.div by constants.

    Only ops whose result has one user are looked through (``root``'s own result is the
    exception: it is the value being replaced).
    """
    owner = value.owner
    inner = owner is root or (isinstance(owner, Operation) and sole_user(value) is not None)
    if isinstance(owner, MulOp) and inner:
        k1, f1 = _product(owner.lhs)
        k2, f2 = _product(owner.rhs)
        return k1 * k2, f1 + f2
    if isinstance(owner, DivOp) and inner:
        d = _scalar(owner.rhs)
        if d is not None and d != 0.0:
            k, f = _product(owner.lhs)
            return k / d, f
    k = _scalar(value)
    return (k, []) if k is not None else (1.0, [value])


def _inner(value: SSAValue, op_type: type) -> Operation | None:
    """The ``op_type`` op defining ``value`` if it is the value's only user chain link."""
    owner = value.owner
    return owner if isinstance(owner, op_type) and sole_user(value) is not None else None


def _one_plus(value: SSAValue) -> SSAValue | None:
    """``t`` if ``value`` is ``1 + t`` (either order), the add having one user."""
    add = _inner(value, AddOp)
    if add is None:
        return None
    for one, t in ((add.lhs, add.rhs), (add.rhs, add.lhs)):
        k = _scalar(one)
        if k is not None and _close(k, 1.0):
            return t
    return None


def _is_erf_arg(value: SSAValue, x: SSAValue) -> bool:
    """``value == x / sqrt 2`` (as a product with a constant)."""
    k, factors = _product(value)
    return factors == [x] and _close(k, math.sqrt(0.5))


def _is_cube(value: SSAValue, x: SSAValue) -> bool:
    """``value == c * x^3`` with c = 0.044715 (x^3 as pow(x, 3) or x*x*x)."""
    k, factors = _product(value)
    if not _close(k, 0.044715):
        return False
    if factors == [x, x, x]:
        return True
    if len(factors) != 1:
        return False
    pow_op = _inner(factors[0], PowOp)
    e = None if pow_op is None else _scalar(pow_op.rhs)
    return pow_op is not None and pow_op.lhs == x and e is not None and _close(e, 3.0)


def _is_tanh_arg(value: SSAValue, x: SSAValue) -> bool:
    """``value == sqrt(2/pi) * (x + 0.044715 x^3)``."""
    k, factors = _product(value)
    if not _close(k, math.sqrt(2.0 / math.pi)) or len(factors) != 1:
        return False
    add = _inner(factors[0], AddOp)
    if add is None:
        return False
    return (add.lhs == x and _is_cube(add.rhs, x)) or (add.rhs == x and _is_cube(add.lhs, x))


def match_gelu(root: MulOp | DivOp) -> tuple[type, SSAValue] | None:
    """(GeluOp or GeluTanhOp, x) if ``root`` computes a GELU chain of x, else None."""
    k, factors = _product(root.results[0], root)
    if not _close(k, 0.5) or len(factors) != 2:
        return None
    for x, s in (factors, factors[::-1]):
        t = _one_plus(s)
        if t is None:
            continue
        erf = _inner(t, ErfOp)
        if erf is not None and _is_erf_arg(erf.x, x):
            return GeluOp, x
        tanh = _inner(t, TanhOp)
        if tanh is not None and _is_tanh_arg(tanh.x, x):
            return GeluTanhOp, x
    return None


@dataclass
class FuseGeluPattern(RewritePattern):
    """mul|div(... erf/tanh chain ...) -> gelu / gelu_tanh."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, root: BinaryOp, rewriter: PatternRewriter) -> None:
        if not isinstance(root, MulOp | DivOp) or not is_f32(root.results[0]):
            return
        found = match_gelu(root)
        if found is None:
            return
        op_type, x = found
        if x.type != root.results[0].type:
            self.tally.decline(root, "the chain's constants broadcast beyond x")
            return
        operands = list(root.operands)
        rewriter.replace(root, [op_type(x)])
        erase_if_dead(rewriter, operands)
        self.tally.did(f"fused a GELU chain into {op_type.name}")


@dataclass(frozen=True)
class FuseGeluPass(ModulePass):
    """Replace decomposed GELU chains by one gelu op (see module docstring)."""

    name = "fuse-gelu"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        PatternRewriteWalker(FuseGeluPattern(tally), apply_recursively=False).rewrite_module(op)
        tally.record()
