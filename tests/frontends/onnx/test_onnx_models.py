"""Whole models: the seeded model zoo and a dynamic-batch CNN, interpreter == onnxruntime."""

from __future__ import annotations

import pytest
from onnx import helper

from nnc.testing.model_zoo import ZOO, random_inputs
from nnc.testing.oracle import make_model


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_matches_onnxruntime(check, name):
    model = ZOO[name]()
    check(model, random_inputs(model), rtol=1e-4)


def _small_cnn(randn, batch) -> object:
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node(
            "Conv", ["p1", "w2"], ["c2"], group=4, auto_pad="SAME_UPPER", kernel_shape=[3, 3]
        ),
        helper.make_node("AveragePool", ["c2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    inits = {
        "w1": randn(0, 4, 3, 3, 3),
        "b1": randn(1, 4),
        "w2": randn(2, 4, 1, 3, 3),
        "wf": randn(3, 10, 16),
        "bf": randn(4, 10),
    }
    return make_model(nodes, {"x": (batch, 3, 8, 8)}, ["y"], inits, opset=13)


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch_cnn(check, randn, batch):
    module = check(_small_cnn(randn, "N"), {"x": randn(5, batch, 3, 8, 8)})
    assert "tensor<?x10xf32>" in str(module)


def test_static_cnn_list_feeds(check, randn):
    check(_small_cnn(randn, 2), [randn(5, 2, 3, 8, 8)])
