"""The light models shipped in the onnx package import and match their expected outputs.

Their weights are ConstantOfShape placeholders (outputs are nearly uniform), so this
checks op coverage and graph plumbing more than numerics.
"""

from __future__ import annotations

import time

import pytest

from nnc.frontends.onnx import import_onnx
from nnc.ir.interpret import interpret
from nnc.testing.model_zoo import LIGHT_MODEL_NAMES, light_models
from nnc.testing.oracle import assert_close

#: The interpreter takes more than 10 s on these.
SLOW = {"light_vgg19"}

_MODELS = {m.name: m for m in light_models()}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in LIGHT_MODEL_NAMES]
)
def test_light_model_matches_shipped_output(name):
    lm = _MODELS[name]
    start = time.perf_counter()
    module = import_onnx(lm.path)
    assert time.perf_counter() - start < 5.0, "import should be fast"
    module.verify()
    (out,) = interpret(module, lm.feeds)
    assert_close(out, lm.expected, rtol=1e-3, what=name)
