"""ONNX activations and broadcasting arithmetic: interpreter == onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from nnc.errors import UnsupportedOpError
from nnc.frontends.onnx import import_onnx
from nnc.testing.oracle import make_model, op_names, single_node_model

OPSETS = [9, 11, 13, 17, 21]
SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple)

#: op type -> (first opset, attributes, input domain: "any" | "positive")
ACTIVATIONS = {
    "Relu": (9, {}, "any"),
    "Sigmoid": (9, {}, "any"),
    "Tanh": (9, {}, "any"),
    "Exp": (9, {}, "any"),
    "Log": (9, {}, "positive"),
    "Sqrt": (9, {}, "positive"),
    "Neg": (9, {}, "any"),
    "Abs": (9, {}, "any"),
    "Reciprocal": (9, {}, "positive"),
    "Erf": (9, {}, "any"),
    "Softplus": (9, {}, "any"),
    "LeakyRelu": (9, {"alpha": 0.13}, "any"),
    "Elu": (9, {"alpha": 0.7}, "any"),
    "HardSigmoid": (9, {"alpha": 0.3, "beta": 0.4}, "any"),
    "HardSwish": (14, {}, "any"),
    "Gelu": (20, {}, "any"),
}


@pytest.mark.parametrize("op_type", sorted(ACTIVATIONS))
@given(
    shape=SHAPES,
    opset=st.sampled_from(OPSETS + [14, 20]),
    seed=st.integers(0, 2**16),
    use_defaults=st.booleans(),
)
def test_activation_matches_onnxruntime(check, randn, op_type, shape, opset, seed, use_defaults):
    first, attrs, domain = ACTIVATIONS[op_type]
    opset = max(opset, first)
    x = randn(seed, *shape) * 3
    if domain == "positive":
        x = np.abs(x) + 0.1
    model = single_node_model(
        op_type, [("x", shape)], opset=opset, **({} if use_defaults else attrs)
    )
    # atol: onnxruntime's float32 erf loses relative accuracy in the far tails
    check(model, {"x": x}, atol=1e-6)


@given(shape=SHAPES, approximate=st.sampled_from(["none", "tanh"]), seed=st.integers(0, 99))
def test_gelu_approximations(check, randn, shape, approximate, seed):
    model = single_node_model("Gelu", [("x", shape)], opset=20, approximate=approximate)
    check(model, {"x": randn(seed, *shape) * 3}, atol=1e-6)


@given(
    opset=st.sampled_from(OPSETS),
    lo=st.none() | st.floats(-2, 0, width=32),
    hi=st.none() | st.floats(0, 2, width=32),
    seed=st.integers(0, 99),
)
def test_clip_attributes_and_inputs(check, randn, opset, lo, hi, seed):
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        model = single_node_model("Clip", [("x", (3, 4))], opset=opset, **attrs)
    else:
        inputs = [("x", (3, 4))]
        inputs.append(("lo", np.array(lo, np.float32)) if lo is not None else ("", None))
        if hi is not None:
            inputs.append(("hi", np.array(hi, np.float32)))
        model = single_node_model("Clip", inputs, opset=opset)
    check(model, {"x": randn(seed, 3, 4) * 3})


@pytest.mark.parametrize("slope_shape", [(1,), (3, 1, 1), (5,), ()])
def test_prelu(check, randn, slope_shape):
    slope = randn(1, *slope_shape)
    model = single_node_model("PRelu", [("x", (2, 3, 4, 5)), ("s", slope)], opset=9)
    check(model, {"x": randn(0, 2, 3, 4, 5)})


def test_clip_runtime_bound_is_unsupported():
    model = single_node_model("Clip", [("x", (3,)), ("lo", ())], opset=13)
    with pytest.raises(UnsupportedOpError, match="clip0.*'min' must be a compile-time constant"):
        import_onnx(model)


# ------------------------------------------------------------------------- arithmetic


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast (numpy rules), either side may be lower rank or scalar."""
    out = draw(st.lists(st.integers(1, 4), min_size=0, max_size=4))
    shapes = []
    for _ in range(2):
        rank = draw(st.integers(0, len(out)))
        tail = out[len(out) - rank :]
        shapes.append(tuple(d if draw(st.booleans()) else 1 for d in tail))
    return shapes


@pytest.mark.parametrize(
    "op_type", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean"]
)
@given(
    shapes=broadcast_pair(),
    const_rhs=st.booleans(),
    opset=st.sampled_from(OPSETS),
    seed=st.integers(0, 2**16),
)
def test_binary_broadcasting(check, randn, op_type, shapes, const_rhs, opset, seed):
    a_shape, b_shape = shapes
    a, b = randn(seed, *a_shape), randn(seed + 1, *b_shape)
    if op_type == "Pow":
        a = np.abs(a) + 0.5
    if op_type == "Div":
        b = np.sign(b) * (np.abs(b) + 0.5)
    inputs = [("a", a_shape), ("b", b if const_rhs else b_shape)]
    feeds = {"a": a} if const_rhs else {"a": a, "b": b}
    check(single_node_model(op_type, inputs, opset=opset), feeds)


@pytest.mark.parametrize("op_type", ["Sum", "Max", "Min", "Mean"])
@pytest.mark.parametrize("n", [1, 2, 4])
def test_variadic_ops(check, randn, op_type, n):
    shapes = [(2, 3, 4), (3, 1), (4,), (1, 1, 1), ()][:n]
    inputs = [(f"x{i}", s) for i, s in enumerate(shapes)]
    feeds = {f"x{i}": randn(i, *s) for i, s in enumerate(shapes)}
    check(single_node_model(op_type, inputs, opset=13), feeds)


def test_pow_with_int_exponent(check, randn):
    model = single_node_model("Pow", [("x", (3, 4)), ("e", np.array(3, np.int64))], opset=15)
    check(model, {"x": randn(0, 3, 4)})


def test_chain_of_float_constants_folds(check, randn):
    """Arithmetic on constants folds to one constant before the runtime op."""
    nodes = [
        helper.make_node("Mul", ["c1", "c2"], ["c3"]),
        helper.make_node("Add", ["x", "c3"], ["y"]),
    ]
    model = make_model(nodes, {"x": (2, 3)}, ["y"], {"c1": randn(0, 3), "c2": randn(1, 3)})
    module = check(model, {"x": randn(2, 2, 3)})
    assert op_names(module) == ["nn.constant", "nn.add"]
