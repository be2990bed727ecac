"""Acceptance: CP decomposition (``low-rank{method=cp}``) of the trained digits CNN's KxK
convs keeps accuracy one-shot (no fine-tuning) and really removes conv parameters.

The 1-channel input conv is left alone (``min-params=100``): its 9-tap filters have no
redundancy to remove, and factorizing it costs ~10 points; the 8->16 conv at half its
parameters costs about one point (measured 0.989 -> 0.980)."""

from __future__ import annotations

from nnc.compiler import compile_model
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp
from nnc.report import layer_infos
from nnc.testing.digits import accuracy


def _conv_params(module) -> int:
    return sum(r.params for r in layer_infos(module) if r.op == "nn.conv")


def test_cp_of_the_cnn_conv_loses_at_most_one_and_a_half_points(cnn, split):
    onnx_model = cnn.onnx(batch=len(split.y_test))
    base = compile_model(onnx_model, build=False, passes="fold-constants")
    comp = compile_model(
        onnx_model,
        build=False,
        passes="fold-constants,low-rank{method=cp ratio=0.5 min-params=100}",
    )
    assert any(op.attributes.get("nn.rank") for op in comp.module.walk() if isinstance(op, ConvOp))
    assert _conv_params(comp.module) < 0.8 * _conv_params(base.module)
    x = split.x_test.reshape((-1, *cnn.input_shape))
    acc = accuracy(lambda a: interpret(comp.module, [a])[0], x, split.y_test)
    assert acc >= cnn.test_accuracy - 0.015
