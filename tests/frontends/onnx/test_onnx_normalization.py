"""ONNX BatchNormalization, LayerNormalization, InstanceNormalization, LRN, Softmax."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnc.errors import UnsupportedOpError
from nnc.frontends.onnx import import_onnx
from nnc.testing.oracle import op_names, single_node_model

SHAPES = st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple)


@given(
    shape=SHAPES,
    opset=st.sampled_from([9, 11, 14, 15, 17, 21]),
    eps=st.floats(1e-6, 1e-2),
    seed=st.integers(0, 2**16),
)
def test_batch_norm(check, randn, shape, opset, eps, seed):
    c = shape[1]
    params = [
        ("scale", randn(seed, c)),
        ("bias", randn(seed + 1, c)),
        ("mean", randn(seed + 2, c)),
        ("var", np.abs(randn(seed + 3, c)) + 0.1),
    ]
    model = single_node_model(
        "BatchNormalization", [("x", shape), *params], opset=opset, epsilon=eps
    )
    check(model, {"x": randn(seed + 4, *shape)})


def test_batch_norm_training_mode_is_unsupported(randn):
    params = [(n, np.ones(2, np.float32)) for n in ("s", "b", "m", "v")]
    model = single_node_model(
        "BatchNormalization", [("x", (1, 2, 3)), *params], opset=15, training_mode=1
    )
    with pytest.raises(UnsupportedOpError, match="batchnormalization0.*training_mode"):
        import_onnx(model)


def test_batch_norm_non_spatial_params_fold(randn):
    """Pre-opset-9 spatial=0 form: per-element parameters become mul + add."""
    from nnc.ir.interpret import interpret

    c, h, w = 2, 3, 4
    scale, bias, mean = randn(0, c, h, w), randn(1, c, h, w), randn(2, c, h, w)
    var = np.abs(randn(3, c, h, w)) + 0.1
    model = single_node_model(
        "BatchNormalization",
        [("x", (2, c, h, w)), ("s", scale), ("b", bias), ("m", mean), ("v", var)],
        opset=9,
    )
    x = randn(4, 2, c, h, w)
    (got,) = interpret(import_onnx(model), {"x": x})
    want = (x - mean) / np.sqrt(var + 1e-5) * scale + bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@given(shape=SHAPES, data=st.data(), seed=st.integers(0, 2**16))
def test_layer_norm(check, randn, shape, data, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    norm = shape[axis % len(shape) :]
    # scale/bias may be given in any shape that broadcasts to the normalized dims
    scale_shape = data.draw(st.sampled_from([norm, norm[1:], tuple(1 for _ in norm)]))
    bias = data.draw(st.sampled_from([None, "full", "bcast"]))
    inputs = [("x", shape), ("scale", randn(seed, *scale_shape))]
    if bias is not None:
        inputs.append(("bias", randn(seed + 1, *(norm if bias == "full" else norm[-1:]))))
    model = single_node_model(
        "LayerNormalization",
        inputs,
        opset=data.draw(st.sampled_from([17, 18, 21])),
        axis=axis,
        epsilon=1e-5,
    )
    check(model, {"x": randn(seed + 2, *shape)})


def test_layer_norm_runtime_broadcast_scale(check, randn):
    model = single_node_model(
        "LayerNormalization", [("x", (2, 3, 4)), ("scale", (1, 4)), ("bias", (4,))], opset=17
    )
    check(model, {"x": randn(0, 2, 3, 4), "scale": randn(1, 1, 4), "bias": randn(2, 4)})


def test_instance_norm(check, randn):
    model = single_node_model(
        "InstanceNormalization",
        [("x", (2, 3, 4, 5)), ("s", randn(0, 3)), ("b", randn(1, 3))],
        opset=9,
        epsilon=1e-4,
    )
    check(model, {"x": randn(2, 2, 3, 4, 5)})


# onnxruntime only takes odd sizes
@given(
    size=st.sampled_from([1, 3, 5]),
    c=st.integers(1, 7),
    seed=st.integers(0, 99),
    alpha=st.floats(1e-4, 1e-1),
    beta=st.floats(0.5, 1.0),
    bias=st.floats(0.5, 2.0),
)
def test_lrn(check, randn, size, c, seed, alpha, beta, bias):
    model = single_node_model(
        "LRN", [("x", (1, c, 3, 3))], opset=13, size=size, alpha=alpha, beta=beta, bias=bias
    )
    check(model, {"x": randn(seed, 1, c, 3, 3) * 3})


# ---------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    opset=st.sampled_from([9, 11, 12, 13, 17, 21]),
    seed=st.integers(0, 2**16),
)
def test_softmax_axes_and_opset_semantics(check, randn, op_type, shape, data, opset, seed):
    attrs = {}
    if data.draw(st.booleans()):
        attrs["axis"] = data.draw(st.integers(-len(shape), len(shape) - 1))
    if opset < 13 and len(shape) == 1 and attrs.get("axis", 1) == 1:
        attrs["axis"] = 0  # the opset < 13 default axis 1 needs rank >= 2
    model = single_node_model(op_type, [("x", shape)], opset=opset, **attrs)
    check(model, {"x": randn(seed, *shape) * 2})


def test_old_softmax_normalizes_the_trailing_block(randn):
    """Opset 11 axis=1 on (2, 3, 4): softmax over 12 values, not over the 3 channels."""
    from nnc.ir.interpret import interpret

    model = single_node_model("Softmax", [("x", (2, 3, 4))], opset=11)
    module = import_onnx(model)
    assert op_names(module) == ["nn.reshape", "nn.softmax", "nn.reshape"]
    (y,) = interpret(module, {"x": randn(0, 2, 3, 4)})
    np.testing.assert_allclose(y.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert not np.allclose(y.sum(axis=1), 1.0)
