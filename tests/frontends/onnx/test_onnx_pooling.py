"""ONNX pooling import: interpreter == onnxruntime over random windows and attributes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnc.errors import UnsupportedOpError
from nnc.frontends.onnx import import_onnx
from nnc.testing.oracle import make_model, single_node_model

AUTO_PADS = st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])


@st.composite
def pool_cases(draw, op_type: str, spatial: int = 2):
    opset = draw(
        st.sampled_from(
            [9, 11, 13, 17, 21] if op_type == "AveragePool" else [9, 10, 11, 12, 17, 21]
        )
    )
    n = spatial
    kernel = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    strides = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    attrs = {"kernel_shape": kernel, "strides": strides}
    dilations = [1] * n
    if op_type == "MaxPool" and opset >= 10 and draw(st.booleans()):
        dilations = draw(st.lists(st.integers(1, 2), min_size=n, max_size=n))
        attrs["dilations"] = dilations
    auto_pad = draw(AUTO_PADS)
    if auto_pad.startswith("SAME"):
        # onnxruntime rejects dilated SAME pooling and the negative pads that
        # stride > kernel gives under the spec's formula
        dilations = [1] * n
        attrs.pop("dilations", None)
        strides[:] = [min(s, k) for s, k in zip(strides, kernel)]
    if auto_pad == "NOTSET":
        # ONNX requires each pad to be smaller than the kernel
        attrs["pads"] = [draw(st.integers(0, k - 1)) for k in kernel + kernel]
    else:
        attrs["auto_pad"] = auto_pad
    if opset >= 10 and auto_pad == "NOTSET":
        attrs["ceil_mode"] = draw(st.integers(0, 1))
    if op_type == "AveragePool":
        attrs["count_include_pad"] = draw(st.integers(0, 1))
    if op_type == "MaxPool" and opset >= 8:
        attrs["storage_order"] = 0
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    size = [draw(st.integers(s, s + 5)) for s in span]
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size)
    return shape, attrs, opset, draw(st.integers(0, 2**16))


@given(pool_cases("MaxPool"))
def test_max_pool_matches_onnxruntime(check, randn, case):
    shape, attrs, opset, seed = case
    check(
        single_node_model("MaxPool", [("x", shape)], opset=opset, **attrs),
        {"x": randn(seed, *shape)},
    )


@given(pool_cases("AveragePool"))
def test_average_pool_matches_onnxruntime(check, randn, case):
    shape, attrs, opset, seed = case
    check(
        single_node_model("AveragePool", [("x", shape)], opset=opset, **attrs),
        {"x": randn(seed, *shape)},
    )


@given(
    st.sampled_from(["MaxPool", "AveragePool"]).flatmap(
        lambda op: st.tuples(st.just(op), pool_cases(op, spatial=1))
    )
)
def test_1d_pools_match_onnxruntime(check, randn, case):
    op_type, (shape, attrs, opset, seed) = case
    check(
        single_node_model(op_type, [("x", shape)], opset=opset, **attrs), {"x": randn(seed, *shape)}
    )


@pytest.mark.parametrize("op_type", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 4, 7)])
def test_global_pools(check, randn, op_type, shape):
    check(single_node_model(op_type, [("x", shape)]), {"x": randn(0, *shape)})


def test_max_pool_indices_output_is_unsupported():
    from onnx import helper

    node = helper.make_node("MaxPool", ["x"], ["y", "idx"], name="mp", kernel_shape=[2, 2])
    relu = helper.make_node("Neg", ["x"], ["z"])
    model = make_model([node, relu], {"x": (1, 1, 4, 4)}, ["y", "idx", "z"])
    with pytest.raises(UnsupportedOpError, match=r"MaxPool node 'mp'.*output 1 \('idx'\)"):
        import_onnx(model)


def test_max_pool_unused_indices_output_is_fine(check, randn):
    from onnx import helper

    node = helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], strides=[2, 2])
    model = make_model([node], {"x": (1, 2, 4, 4)}, ["y"])
    check(model, {"x": randn(0, 1, 2, 4, 4)})


def test_dilated_average_pool_is_unsupported():
    model = single_node_model(
        "AveragePool", [("x", (1, 1, 6, 6))], opset=19, kernel_shape=[2, 2], dilations=[2, 2]
    )
    with pytest.raises(UnsupportedOpError, match="averagepool0.*dilations"):
        import_onnx(model)
