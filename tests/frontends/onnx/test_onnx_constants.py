"""Weight sources, compile-time folding of shape chains, dynamic dims, and reductions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nnc.errors import UnsupportedOpError
from nnc.frontends.onnx import import_onnx
from nnc.ir.builder import io_names
from nnc.testing.oracle import make_model, op_names, single_node_model


def test_initializer_listed_as_graph_input_is_a_weight(check, randn):
    """IR < 4 models list weights among the graph inputs: they stay constants."""
    model = single_node_model("Add", [("x", (2, 3)), ("w", randn(0, 2, 3))])
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3]))
    module = check(model, {"x": randn(1, 2, 3)})
    assert io_names(module) == (["x"], ["y0"])


def test_float64_initializer_is_narrowed(check, randn):
    nodes = [
        helper.make_node("Cast", ["w64"], ["w"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "w"], ["y"]),
    ]
    model = make_model(nodes, {"x": (3,)}, ["y"], {"w64": randn(0, 3).astype(np.float64)})
    check(model, {"x": randn(1, 3)})


@pytest.mark.parametrize(
    "attr,value",
    [
        ("value", numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3))),
        ("value_float", 2.5),
        ("value_floats", [1.0, -2.0, 3.0]),
    ],
)
def test_constant_node_values(check, randn, attr, value):
    nodes = [
        helper.make_node("Constant", [], ["c"], **{attr: value}),
        helper.make_node("Add", ["x", "c"], ["y"]),
    ]
    check(make_model(nodes, {"x": (2, 3)}, ["y"], opset=13), {"x": randn(0, 2, 3)})


@pytest.mark.parametrize("attr,value", [("value_int", 6), ("value_ints", [3, 2])])
def test_constant_int_values_feed_reshape(check, randn, attr, value):
    nodes = [
        helper.make_node("Constant", [], ["c"], **{attr: value}),
        helper.make_node("Reshape", ["c", "minus1"], ["s"]),  # scalar -> vector
        helper.make_node("Reshape", ["x", "s"], ["y"]),
    ]
    model = make_model(nodes, {"x": (2, 3)}, ["y"], {"minus1": np.array([-1])}, opset=13)
    check(model, {"x": randn(0, 2, 3)})


@pytest.mark.parametrize("fill", [None, 0.5])
def test_constant_of_shape_weights(check, randn, fill):
    attrs = {} if fill is None else {"value": numpy_helper.from_array(np.array([fill], np.float32))}
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["w"], **attrs),
        helper.make_node("Sub", ["x", "w"], ["y"]),
    ]
    model = make_model(nodes, {"x": (2, 3)}, ["y"], {"shape": np.array([2, 3], np.int64)})
    check(model, {"x": randn(0, 2, 3)})


def _flatten_by_shape_chain(batch, opset: int):
    """x.view(x.size(0), -1) as exported by PyTorch: Shape->Gather->Unsqueeze->Concat->Reshape."""
    unsq = (
        helper.make_node("Unsqueeze", ["b"], ["b1"], axes=[0])
        if opset < 13
        else helper.make_node("Unsqueeze", ["b", "zero1"], ["b1"])
    )
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        unsq,
        helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {"zero": np.array(0, np.int64), "minus1": np.array([-1], np.int64)}
    if opset >= 13:
        inits["zero1"] = np.array([0], np.int64)
    return make_model(nodes, {"x": (batch, 3, 4, 5)}, ["y"], inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 21])
def test_shape_chain_folds_into_static_reshape(check, randn, opset):
    module = check(_flatten_by_shape_chain(2, opset), {"x": randn(0, 2, 3, 4, 5)})
    assert op_names(module) == ["nn.reshape"]
    assert "tensor<2x60xf32>" in str(module)


@pytest.mark.parametrize("opset", [11, 13])
def test_shape_chain_with_dynamic_batch(check, randn, opset):
    module = check(_flatten_by_shape_chain("N", opset), {"x": randn(0, 3, 3, 4, 5)})
    assert op_names(module) == ["nn.reshape"]
    assert "tensor<?x60xf32>" in str(module)


def test_arithmetic_on_dynamic_dim_is_unsupported():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Mul", ["s", "two"], ["t"], name="scale_shape"),
        helper.make_node("Reshape", ["x", "t"], ["y"]),
    ]
    model = make_model(nodes, {"x": ("N", 2)}, ["y"], {"two": np.array([1, 1], np.int64)})
    with pytest.raises(UnsupportedOpError, match="Mul node 'scale_shape'.*dynamic dimension"):
        import_onnx(model)


def test_folding_of_int_shape_arithmetic(check, randn):
    """Shape -> Slice -> Cast -> Div/Mul/Sub/Add -> Range/Squeeze -> Concat -> Reshape."""
    i64 = TensorProto.INT64
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "one", "three"], ["hw"]),  # [4, 6]
        helper.make_node("Cast", ["hw"], ["hw64"], to=i64),
        helper.make_node("Div", ["hw64", "two"], ["half"]),  # [2, 3]
        helper.make_node("Mul", ["half", "two"], ["back"]),  # [4, 6]
        helper.make_node("Sub", ["back", "half"], ["diff"]),  # [2, 3]
        helper.make_node("Add", ["diff", "zero"], ["same"]),
        helper.make_node("Range", ["r0", "r1", "r2"], ["rng"]),  # [12]
        helper.make_node("Squeeze", ["rng"], ["two_s"], axes=[0]),
        helper.make_node("Unsqueeze", ["two_s"], ["two_v"], axes=[0]),
        helper.make_node("Concat", ["two_v", "same"], ["target"], axis=0),  # [12, 2, 3]
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {
        "one": np.array([1]),
        "three": np.array([3]),
        "two": np.array([2]),
        "zero": np.array([0]),
        "r0": np.array(12),
        "r1": np.array(13),
        "r2": np.array(1),
    }
    module = check(
        make_model(nodes, {"x": (3, 4, 6)}, ["y"], inits, opset=11), {"x": randn(0, 3, 4, 6)}
    )
    assert op_names(module) == ["nn.reshape"]


def test_unused_unsupported_node_is_skipped(check, randn):
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sin", ["x"], ["unused"])]
    check(make_model(nodes, {"x": (2, 3)}, ["y"]), {"x": randn(0, 2, 3)})


def test_constant_output_is_materialized(check, randn):
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Constant", [], ["c"], value_floats=[1.0, 2.0]),
    ]
    module = check(make_model(nodes, {"x": (2,)}, ["y", "c"]), {"x": randn(0, 2)})
    assert io_names(module)[1] == ["y", "c"]


# ------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("op_type", ["ReduceMean", "ReduceSum", "ReduceMax"])
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    opset=st.sampled_from([11, 13, 17, 18, 21]),
    seed=st.integers(0, 2**16),
)
def test_reductions(check, randn, op_type, shape, data, opset, seed):
    rank = len(shape)
    axes = data.draw(
        st.none() | st.lists(st.integers(-rank, rank - 1), min_size=1, unique_by=lambda a: a % rank)
    )
    keepdims = data.draw(st.integers(0, 1))
    input_opset = 13 if op_type == "ReduceSum" else 18
    inputs, attrs = [("x", shape)], {"keepdims": keepdims}
    if axes is not None and opset < input_opset:
        attrs["axes"] = axes
    elif axes is not None:
        inputs.append(("axes", np.array(axes, np.int64)))
    model = single_node_model(op_type, inputs, opset=opset, **attrs)
    check(model, {"x": randn(seed, *shape)})


def test_reduce_noop_with_empty_axes(check, randn):
    model = single_node_model("ReduceMean", [("x", (2, 3))], opset=18, noop_with_empty_axes=1)
    module = check(model, {"x": randn(0, 2, 3)})
    assert op_names(module) == []


def test_dynamic_dim_token_through_slice_and_concat(check, randn):
    """Shape(x)[:1] ++ [3, 2, -1]: the token for N is copied, -1 resolves statically."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
        helper.make_node("Concat", ["n", "rest"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {"zero": np.array([0]), "one": np.array([1]), "rest": np.array([3, 2, -1])}
    model = make_model(nodes, {"x": ("N", 3, 4)}, ["y"], inits, opset=13)
    module = check(model, {"x": randn(0, 2, 3, 4)})
    assert "tensor<?x3x2x2xf32>" in str(module)


def test_token_of_another_tensor_is_unsupported():
    nodes = [
        helper.make_node("Shape", ["z"], ["s"]),
        helper.make_node("Reshape", ["x", "s"], ["y"], name="r"),
    ]
    model = make_model(nodes, {"x": ("N", 4), "z": ("M", 4)}, ["y"], opset=13)
    with pytest.raises(UnsupportedOpError, match="Reshape node 'r'.*dynamic dimension"):
        import_onnx(model)
