"""Accuracy and size on a CNN trained on scikit-learn's digits (tests/quant/digits.py).

Acceptance (issue 4): int8 static PTQ with 100 calibration images loses <= 0.5 points of
test accuracy; int4 weight-only loses <= 2 points; int8 weights are <= 26% of the fp32
weights, int4 <= 14%. Run in the interpreter (the oracle) until native integer kernels
land.
"""

from __future__ import annotations

import numpy as np
import pytest
from digits import BATCH, accuracy_of

from nnc.compiler import compile_model
from nnc.ir.interpret import interpret


def _compiled(digits, quant, **kw):
    calib = {"x": digits.x_train[:100]} if quant != "none" else None
    return compile_model(
        digits.model, quant=quant, calibration=calib, batch=BATCH, build=False, **kw
    )


def _accuracy(digits, comp):
    return accuracy_of(lambda xb: interpret(comp.module, [xb])[0], digits.x_test, digits.y_test)


@pytest.fixture(scope="module")
def fp32(digits):
    comp = _compiled(digits, "none")
    return comp, _accuracy(digits, comp)


def test_float_model_is_trained(fp32):
    assert fp32[1] >= 95.0


@pytest.mark.parametrize(
    "quant, max_loss, max_ratio",
    [("int8", 0.5, 0.26), ("int4-weight", 2.0, 0.14)],
)
def test_quantized_accuracy_and_size(digits, fp32, quant, max_loss, max_ratio):
    comp = _compiled(digits, quant)
    acc = _accuracy(digits, comp)
    assert fp32[1] - acc <= max_loss, f"{quant}: {fp32[1]:.2f}% -> {acc:.2f}%"
    ratio = comp.report.total_weight_bytes / fp32[0].report.total_weight_bytes
    assert ratio <= max_ratio, f"{quant}: weights are {ratio:.1%} of fp32"
    table = "\n".join(comp.report.quant_lines)
    assert "relative RMS" in table and "quantized weights" in table


def test_static_int8_has_no_round_trips_between_integer_layers(digits):
    comp = _compiled(digits, "int8")
    names = [op.name for op in comp.module.body.block.first_op.body.blocks[0].ops]
    assert names.count("nn.qconv") == 2 and names.count("nn.qgemm") == 2
    # max pools and the flatten run on the integers: one quantize in, one dequantize out
    assert names.count("nn.quantize") == 1 and names.count("nn.dequantize") == 1
    assert names.index("nn.quantize") < names.index("nn.qconv")
    assert names.index("nn.dequantize") == len(names) - 2  # right before func.return


def test_entropy_calibration_keeps_accuracy(digits, fp32):
    comp = _compiled(digits, "int8", calib_method="entropy")
    assert fp32[1] - _accuracy(digits, comp) <= 1.0


@pytest.mark.parametrize("quant, max_loss", [("int8", 0.5), ("int4-weight", 2.0)])
def test_native_library_matches_the_interpreter_and_keeps_accuracy(digits, fp32, quant, max_loss):
    import nnc
    from nnc.errors import UnsupportedOpError

    try:
        lib = nnc.compile(
            digits.model, quant=quant, calibration={"x": digits.x_train[:100]}, batch=BATCH
        )
    except UnsupportedOpError as err:  # a target without native integer kernels
        pytest.skip(str(err))
    x = digits.x_test[:BATCH]
    got, want = lib.run([x])[0], interpret(lib.module, [x])[0]
    if quant == "int8":  # integer kernels: bit for bit
        np.testing.assert_array_equal(got, want)
    else:  # decoded weights + float kernels: float tolerance
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    acc = accuracy_of(lambda xb: lib.run([xb])[0], digits.x_test, digits.y_test)
    assert fp32[1] - acc <= max_loss
