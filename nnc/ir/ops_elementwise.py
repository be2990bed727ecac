"""Elementwise nn ops: unary activations and broadcasting binary arithmetic.

Each unary op class has ``KIND`` (the activation kind name shared with the backend's
epilogues) and ``ALPHA``/``BETA`` naming the properties that parameterise it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec, nn_op
from nnc.ir.shape_rules import ShapeRuleError, broadcast


class UnaryOp(NNOp):
    """Base of elementwise unary ops: result has the operand's type."""

    KIND: ClassVar[str] = ""
    ALPHA: ClassVar[str | None] = None
    BETA: ClassVar[str | None] = None

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        return [ins[0]]

    def act_params(self) -> tuple[float, float]:
        """(alpha, beta) of this activation for the shared activation emitter."""
        alpha = self.prop(self.ALPHA) if self.ALPHA else 0.0
        beta = self.prop(self.BETA) if self.BETA else 0.0
        return float(alpha), float(beta)


def _unary(
    name: str,
    kind: str,
    props: dict | None = None,
    alpha: str | None = None,
    beta: str | None = None,
):
    def wrap(cls):
        cls.KIND, cls.ALPHA, cls.BETA = kind, alpha, beta
        return nn_op(name, operands=("x",), props=props)(cls)

    return wrap


@_unary("nn.relu", "relu")
class ReluOp(UnaryOp):
    """max(x, 0)."""


@_unary("nn.leaky_relu", "leaky_relu", {"alpha": ("float", 0.01)}, alpha="alpha")
class LeakyReluOp(UnaryOp):
    """x if x >= 0 else alpha * x."""


@_unary(
    "nn.clip",
    "clip",
    {"min": ("float", float("-inf")), "max": ("float", float("inf"))},
    alpha="min",
    beta="max",
)
class ClipOp(UnaryOp):
    """min(max(x, min), max)."""


@_unary("nn.sigmoid", "sigmoid")
class SigmoidOp(UnaryOp):
    """1 / (1 + exp(-x))."""


@_unary("nn.tanh", "tanh")
class TanhOp(UnaryOp):
    """tanh(x)."""


@_unary(
    "nn.hard_sigmoid",
    "hard_sigmoid",
    {"alpha": ("float", 0.2), "beta": ("float", 0.5)},
    alpha="alpha",
    beta="beta",
)
class HardSigmoidOp(UnaryOp):
    """max(0, min(1, alpha * x + beta))."""


@_unary("nn.hard_swish", "hard_swish")
class HardSwishOp(UnaryOp):
    """x * max(0, min(1, x / 6 + 0.5))."""


@_unary("nn.gelu", "gelu")
class GeluOp(UnaryOp):
    """Exact GELU: 0.5 x (1 + erf(x / sqrt 2))."""


@_unary("nn.gelu_tanh", "gelu_tanh")
class GeluTanhOp(UnaryOp):
    """Tanh-approximated GELU."""


@_unary("nn.erf", "erf")
class ErfOp(UnaryOp):
    """Gauss error function."""


@_unary("nn.exp", "exp")
class ExpOp(UnaryOp):
    """exp(x)."""


@_unary("nn.log", "log")
class LogOp(UnaryOp):
    """Natural log."""


@_unary("nn.sqrt", "sqrt")
class SqrtOp(UnaryOp):
    """Square root."""


@_unary("nn.neg", "neg")
class NegOp(UnaryOp):
    """-x."""


@_unary("nn.abs", "abs")
class AbsOp(UnaryOp):
    """|x|."""


@_unary("nn.reciprocal", "reciprocal")
class ReciprocalOp(UnaryOp):
    """1 / x."""


@_unary("nn.elu", "elu", {"alpha": ("float", 1.0)}, alpha="alpha")
class EluOp(UnaryOp):
    """x if x > 0 else alpha * (exp(x) - 1)."""


@_unary("nn.softplus", "softplus")
class SoftplusOp(UnaryOp):
    """log(1 + exp(x))."""


class BinaryOp(NNOp):
    """Base of broadcasting binary ops (numpy rules); ``KIND`` names the operation."""

    KIND: ClassVar[str] = ""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        a, b = ins
        if a.dtype != b.dtype:
            raise ShapeError(f"operand dtypes differ: {a.dtype} vs {b.dtype}")
        try:
            return [TensorSpec(broadcast(a.shape, b.shape), a.dtype)]
        except ShapeRuleError as err:
            raise ShapeError(str(err)) from None


def _binary(name: str, kind: str):
    def wrap(cls):
        cls.KIND = kind
        return nn_op(name, operands=("lhs", "rhs"))(cls)

    return wrap


@_binary("nn.add", "add")
class AddOp(BinaryOp):
    """lhs + rhs."""


@_binary("nn.sub", "sub")
class SubOp(BinaryOp):
    """lhs - rhs."""


@_binary("nn.mul", "mul")
class MulOp(BinaryOp):
    """lhs * rhs."""


@_binary("nn.div", "div")
class DivOp(BinaryOp):
    """lhs / rhs."""


@_binary("nn.pow", "pow")
class PowOp(BinaryOp):
    """lhs ** rhs."""


@_binary("nn.max", "max")
class MaxOp(BinaryOp):
    """Elementwise maximum."""


@_binary("nn.min", "min")
class MinOp(BinaryOp):
    """Elementwise minimum."""


UNARY_OPS = (
    ReluOp,
    LeakyReluOp,
    ClipOp,
    SigmoidOp,
    TanhOp,
    HardSigmoidOp,
    HardSwishOp,
    GeluOp,
    GeluTanhOp,
    ErfOp,
    ExpOp,
    LogOp,
    SqrtOp,
    NegOp,
    AbsOp,
    ReciprocalOp,
    EluOp,
    SoftplusOp,
)
BINARY_OPS = (AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp)
