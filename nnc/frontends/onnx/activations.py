"""ONNX elementwise activations -> nn unary ops.

Relu, LeakyRelu, Sigmoid, Tanh, HardSigmoid, HardSwish (opset 14+), Exp, Log, Sqrt, Neg,
Abs, Reciprocal, Erf, Elu, Softplus, Gelu (opset 20+, approximate none/tanh), Clip
(opset < 11: min/max attributes; 11+: optional min/max inputs that must be compile-time
constants) and PRelu (a uniform slope becomes leaky_relu; otherwise
``relu(x) + slope * min(x, 0)``).
"""

from __future__ import annotations

import numpy as np

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter
from nnc.ir import ops_elementwise as ew

_PLAIN = {
    "Relu": ew.ReluOp,
    "Sigmoid": ew.SigmoidOp,
    "Tanh": ew.TanhOp,
    "Exp": ew.ExpOp,
    "Log": ew.LogOp,
    "Sqrt": ew.SqrtOp,
    "Neg": ew.NegOp,
    "Abs": ew.AbsOp,
    "Reciprocal": ew.ReciprocalOp,
    "Erf": ew.ErfOp,
    "Softplus": ew.SoftplusOp,
}
#: op type -> (nn op, {onnx attribute: default}); attribute names equal nn property names.
_PARAMETRIZED = {
    "LeakyRelu": (ew.LeakyReluOp, {"alpha": 0.01}),
    "Elu": (ew.EluOp, {"alpha": 1.0}),
    "HardSigmoid": (ew.HardSigmoidOp, {"alpha": 0.2, "beta": 0.5}),
}


@converter(*_PLAIN)
def convert_plain(node: NodeContext) -> list[Output]:
    """Parameterless activations."""
    return [node.insert(_PLAIN[node.op_type](node.input(0)))]


@converter(*_PARAMETRIZED)
def convert_parametrized(node: NodeContext) -> list[Output]:
    """Activations whose float attributes map one-to-one onto nn properties."""
    op_class, defaults = _PARAMETRIZED[node.op_type]
    props = {k: float(node.attr(k, v)) for k, v in defaults.items()}
    return [node.insert(op_class(node.input(0), **props))]


@converter("HardSwish", opsets=(14, 21))
def convert_hard_swish(node: NodeContext) -> list[Output]:
    """x * hard_sigmoid(x) with alpha 1/6, beta 0.5."""
    return [node.insert(ew.HardSwishOp(node.input(0)))]


@converter("Gelu", opsets=(20, 21))
def convert_gelu(node: NodeContext) -> list[Output]:
    """Gelu with approximate='none' (erf) or 'tanh'."""
    approximate = node.attr("approximate", "none")
    kinds = {"none": ew.GeluOp, "tanh": ew.GeluTanhOp}
    if approximate not in kinds:
        raise node.bad_attr("approximate", approximate, "expected 'none' or 'tanh'")
    return [node.insert(kinds[approximate](node.input(0)))]


@converter("Clip", opsets=(9, 10))
def convert_clip_attrs(node: NodeContext) -> list[Output]:
    """Clip-6: min/max attributes."""
    lo = float(node.attr("min", -np.inf))
    hi = float(node.attr("max", np.inf))
    return [node.insert(ew.ClipOp(node.input(0), min=lo, max=hi))]


@converter("Clip", opsets=(11, 21))
def convert_clip_inputs(node: NodeContext) -> list[Output]:
    """Clip-11+: optional scalar min/max inputs (compile-time constants)."""
    bounds = []
    for i, name, default in ((1, "min", -np.inf), (2, "max", np.inf)):
        if not node.has_input(i):
            bounds.append(default)
            continue
        arr = node.const(i, name)
        if arr.size != 1:
            raise node.error(f"input '{name}' must be a scalar, got shape {arr.shape}")
        bounds.append(float(arr.reshape(())))
    return [node.insert(ew.ClipOp(node.input(0), min=bounds[0], max=bounds[1]))]


@converter("PRelu")
def convert_prelu(node: NodeContext) -> list[Output]:
    """PRelu(X, slope): slope broadcasts to X."""
    x = node.input(0)
    slope = node.known(1)
    if (
        slope is not None
        and slope.size > 0
        and np.all(slope == slope.reshape(-1)[0])
        and slope.ndim <= node.spec(0).rank
    ):
        return [node.insert(ew.LeakyReluOp(x, alpha=float(slope.reshape(-1)[0])))]
    zero = node.constant(np.zeros((), np.float32))
    negative = node.insert(ew.MinOp(x, zero))
    scaled = node.insert(ew.MulOp(negative, node.input(1)))
    return [node.insert(ew.AddOp(node.insert(ew.ReluOp(x)), scaled))]
