"""ONNX shape ops (Reshape, Flatten, Transpose, Squeeze/Unsqueeze, Expand, Identity,
Dropout, Cast) on run-time data: interpreter == onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from nnc.errors import UnsupportedOpError
from nnc.frontends.onnx import import_onnx
from nnc.testing.oracle import make_model, op_names, single_node_model

OPSETS = st.sampled_from([9, 11, 13, 14, 17, 21])
SHAPES = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@st.composite
def reshape_cases(draw):
    shape = draw(SHAPES)
    total = int(np.prod(shape))
    # split the element count into random factors, then mark one -1 and some 0-copies
    target, rest = [], total
    for _ in range(draw(st.integers(0, 3))):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = draw(st.sampled_from(divisors))
        target.append(d)
        rest //= d
    target.append(rest)
    target = [int(v) for v in target]
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    for j in range(min(len(target), len(shape))):
        if target[j] == shape[j] and draw(st.booleans()):
            target[j] = 0
    return shape, target


@given(reshape_cases(), OPSETS, st.integers(0, 2**16))
def test_reshape(check, randn, case, opset, seed):
    shape, target = case
    model = single_node_model(
        "Reshape", [("x", shape), ("s", np.array(target, np.int64))], opset=opset
    )
    check(model, {"x": randn(seed, *shape)})


def test_reshape_allowzero_keeps_literal_dims(check, randn):
    model = single_node_model(
        "Reshape", [("x", (2, 3, 4)), ("s", np.array([4, 3, 2]))], opset=14, allowzero=1
    )
    check(model, {"x": randn(0, 2, 3, 4)})


def test_reshape_copies_dynamic_batch_with_zero(check, randn):
    model = single_node_model("Reshape", [("x", ("N", 3, 4)), ("s", np.array([0, -1]))])
    module = check(model, {"x": randn(0, 5, 3, 4)})
    assert "tensor<?x12xf32>" in str(module)


@given(SHAPES, st.data(), OPSETS, st.integers(0, 2**16))
def test_flatten(check, randn, shape, data, opset, seed):
    lo = -len(shape) if opset >= 11 else 0
    axis = data.draw(st.integers(lo, len(shape)))
    check(
        single_node_model("Flatten", [("x", shape)], opset=opset, axis=axis),
        {"x": randn(seed, *shape)},
    )


@given(SHAPES, st.data(), st.integers(0, 2**16))
def test_transpose(check, randn, shape, data, seed):
    attrs = {}
    if data.draw(st.booleans()):
        attrs["perm"] = data.draw(st.permutations(range(len(shape))))
    check(single_node_model("Transpose", [("x", shape)], **attrs), {"x": randn(seed, *shape)})


@given(
    st.lists(st.integers(1, 3), min_size=1, max_size=5).map(tuple),
    st.data(),
    OPSETS,
    st.integers(0, 2**16),
)
def test_squeeze(check, randn, shape, data, opset, seed):
    ones = [i for i, d in enumerate(shape) if d == 1]
    axes = None
    if ones and data.draw(st.booleans()):
        picked = data.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True))
        axes = [a - len(shape) if data.draw(st.booleans()) else a for a in picked]
    if axes is None:
        model = single_node_model("Squeeze", [("x", shape)], opset=opset)
    elif opset < 13:
        model = single_node_model("Squeeze", [("x", shape)], opset=opset, axes=axes)
    else:
        model = single_node_model("Squeeze", [("x", shape), ("a", np.array(axes))], opset=opset)
    check(model, {"x": randn(seed, *shape)})


@given(SHAPES, st.data(), OPSETS, st.integers(0, 2**16))
def test_unsqueeze(check, randn, shape, data, opset, seed):
    out_rank = len(shape) + data.draw(st.integers(1, 2))
    axes = data.draw(
        st.lists(
            st.integers(-out_rank, out_rank - 1),
            min_size=out_rank - len(shape),
            max_size=out_rank - len(shape),
            unique_by=lambda a: a % out_rank,
        )
    )
    if opset < 13:
        model = single_node_model("Unsqueeze", [("x", shape)], opset=opset, axes=axes)
    else:
        model = single_node_model("Unsqueeze", [("x", shape), ("a", np.array(axes))], opset=opset)
    check(model, {"x": randn(seed, *shape)})


@pytest.mark.parametrize(
    "shape,target", [((3, 1), (2, 1, 4)), ((1, 4), (3, 4)), ((2, 3), (2, 3)), ((4,), (2, 1, 1))]
)
def test_expand(check, randn, shape, target):
    model = single_node_model("Expand", [("x", shape), ("s", np.array(target))], opset=13)
    check(model, {"x": randn(0, *shape)})


def test_identity_dropout_cast_are_removed(check, randn):
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Dropout", ["a"], ["b"], ratio=0.3),
        helper.make_node("Cast", ["b"], ["y"], to=TensorProto.FLOAT),
    ]
    module = check(make_model(nodes, {"x": (2, 3)}, ["y"], opset=11), {"x": randn(0, 2, 3)})
    assert op_names(module) == []


def test_dropout_opset13_with_ratio_input(check, randn):
    model = single_node_model(
        "Dropout", [("x", (2, 3)), ("r", np.array(0.5, np.float32))], opset=13
    )
    check(model, {"x": randn(0, 2, 3)})


def test_dropout_mask_used_is_unsupported():
    nodes = [helper.make_node("Dropout", ["x"], ["y", "mask"], name="drop")]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, [2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpError, match=r"Dropout node 'drop'.*output 1 \('mask'\)"):
        import_onnx(model)


def test_cast_of_runtime_data_to_int_is_unsupported():
    model = single_node_model("Cast", [("x", (2,))], to=TensorProto.INT64)
    with pytest.raises(UnsupportedOpError, match="cast0.*to='INT64'"):
        import_onnx(model)
