"""Whole models end to end: nnc's compiled output matches onnxruntime within 1e-4.

The error measure is max |nnc - ort| / max |ort| per output (see nnc.testing.oracle).
"""

import numpy as np
import pytest

import nnc
from nnc.testing import model_zoo
from nnc.testing.oracle import assert_close, run_onnxruntime

FAST_MODELS = [
    ("mlp", {}),
    ("lenet", {}),
    ("resnet18_cifar", {}),
    ("resnet18", {}),
    ("mobilenet_v2", {}),
    ("transformer_block", {}),
    ("transformer_block_gelu_op", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), FAST_MODELS, ids=[m for m, _ in FAST_MODELS])
def test_zoo_model_matches_onnxruntime(name, kwargs):
    model = model_zoo.ZOO[name](**kwargs)
    feeds = model_zoo.random_inputs(model, seed=1)
    compiled = nnc.compile(model, opt_level=3)
    expected = run_onnxruntime(model, feeds)
    actual = compiled.run(feeds)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert_close(a, e, rtol=1e-4)


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_lower_opt_levels_agree(opt_level):
    model = model_zoo.resnet18(image_size=32)
    feeds = model_zoo.random_inputs(model, seed=2)
    expected = run_onnxruntime(model, feeds)
    assert_close(nnc.compile(model, opt_level=opt_level).run(feeds)[0], expected[0], rtol=1e-4)


LIGHT = [m.name for m in model_zoo.light_models()]


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_matches_shipped_output(name):
    light = next(m for m in model_zoo.light_models() if m.name == name)
    compiled = nnc.compile(light.load(), opt_level=3)
    out = compiled.run({light.input_name: light.input})[0]
    np.testing.assert_allclose(out, light.expected, rtol=1e-3, atol=1e-6)
    # onnxruntime agrees too, so a regression in either side is caught.
    assert_close(out, run_onnxruntime(light.load(), {light.input_name: light.input})[0], 1e-4)
