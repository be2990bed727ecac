"""ONNX Conv import: interpreter == onnxruntime over random shapes and attributes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnc.errors import UnsupportedOpError
from nnc.frontends.onnx import import_onnx
from nnc.testing.oracle import op_names, single_node_model

OPSETS = st.sampled_from([9, 11, 13, 17, 21])
AUTO_PADS = st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])


@st.composite
def conv_cases(draw, spatial: int = 2):
    group = draw(st.integers(1, 3))
    if draw(st.booleans()):  # depthwise
        c, m = group, group * draw(st.integers(1, 2))
    else:
        c, m = group * draw(st.integers(1, 3)), group * draw(st.integers(1, 3))
    kernel = draw(st.lists(st.integers(1, 3), min_size=spatial, max_size=spatial))
    strides = draw(st.lists(st.integers(1, 3), min_size=spatial, max_size=spatial))
    dilations = draw(st.lists(st.integers(1, 2), min_size=spatial, max_size=spatial))
    auto_pad = draw(AUTO_PADS)
    if auto_pad.startswith("SAME"):  # onnxruntime rejects dilated SAME padding
        dilations = [1] * spatial
    attrs = {
        "kernel_shape": kernel,
        "strides": strides,
        "dilations": dilations,
        "group": group,
        "auto_pad": auto_pad,
    }
    if auto_pad == "NOTSET":
        attrs["pads"] = draw(
            st.lists(st.integers(0, 2), min_size=2 * spatial, max_size=2 * spatial)
        )
        del attrs["auto_pad"]
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    size = [draw(st.integers(s, s + 6)) for s in span]
    batch = draw(st.integers(1, 2))
    return {
        "x": (batch, c, *size),
        "w": (m, c // group, *kernel),
        "bias": draw(st.booleans()),
        "attrs": attrs,
        "opset": draw(OPSETS),
        "seed": draw(st.integers(0, 2**16)),
    }


def _conv_model(case, randn):
    rng_w = randn(case["seed"], *case["w"])
    inputs = [("x", case["x"]), ("w", rng_w)]
    if case["bias"]:
        inputs.append(("b", randn(case["seed"] + 1, case["w"][0])))
    return single_node_model("Conv", inputs, opset=case["opset"], **case["attrs"])


@given(conv_cases())
def test_conv2d_matches_onnxruntime(check, randn, case):
    model = _conv_model(case, randn)
    check(model, {"x": randn(case["seed"] + 2, *case["x"])})


@given(conv_cases(spatial=1))
def test_conv1d_matches_onnxruntime(check, randn, case):
    model = _conv_model(case, randn)
    module = check(model, {"x": randn(case["seed"] + 2, *case["x"])})
    ops = op_names(module)
    assert ops[0] == "nn.reshape" and ops[-2:] == ["nn.conv", "nn.reshape"]


def test_conv_weight_as_runtime_input(check, randn):
    model = single_node_model(
        "Conv", [("x", (1, 4, 6, 6)), ("w", (2, 2, 3, 3))], group=2, pads=[1, 0, 1, 0]
    )
    check(model, {"x": randn(0, 1, 4, 6, 6), "w": randn(1, 2, 2, 3, 3)})


def test_conv_dynamic_batch(check, randn):
    model = single_node_model(
        "Conv", [("x", ("N", 3, 7, 7)), ("w", randn(0, 4, 3, 3, 3))], strides=[2, 2]
    )
    module = check(model, {"x": randn(1, 3, 3, 7, 7)})
    assert "tensor<?x4x3x3xf32>" in str(module)


def test_conv3d_is_unsupported(randn):
    model = single_node_model("Conv", [("x", (1, 2, 4, 4, 4)), ("w", randn(0, 3, 2, 2, 2, 2))])
    with pytest.raises(UnsupportedOpError, match=r"Conv node 'conv0' \(opset 17\).*kernel_shape"):
        import_onnx(model)


def test_conv_unknown_auto_pad_is_unsupported(randn):
    model = single_node_model(
        "Conv", [("x", (1, 2, 4, 4)), ("w", randn(0, 3, 2, 2, 2))], auto_pad="SAME_SIDEWAYS"
    )
    with pytest.raises(UnsupportedOpError, match="conv0.*auto_pad='SAME_SIDEWAYS'"):
        import_onnx(model)


def test_conv_shared_weight_is_one_constant(randn):
    from onnx import helper

    from nnc.testing.oracle import make_model

    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "w"], ["y"], pads=[1, 1, 1, 1]),
    ]
    model = make_model(nodes, {"x": (1, 2, 5, 5)}, ["y"], {"w": randn(0, 2, 2, 3, 3)})
    text = str(import_onnx(model))
    assert text.count("nn.constant") == 1
