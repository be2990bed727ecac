"""Acceptance: each compression technique on the trained digits MLP / CNN keeps accuracy.

The compressed modules run in the interpreter (the oracle) on the 450 test images.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnc.compiler import compile_model
from nnc.ir.interpret import interpret
from nnc.passes._weights import masks, weight_layers
from nnc.testing.digits import accuracy


def _compressed_accuracy(model, split, passes: str) -> tuple[float, object]:
    comp = compile_model(model.onnx(batch=len(split.y_test)), build=False, passes=passes)
    x = split.x_test.reshape((-1, *model.input_shape))
    return accuracy(lambda a: interpret(comp.module, [a])[0], x, split.y_test), comp


def test_trained_models_are_good(mlp, cnn):
    assert mlp.test_accuracy >= 0.97 and cnn.test_accuracy >= 0.97


def test_magnitude_pruning_to_half_loses_at_most_one_point(mlp, split):
    acc, comp = _compressed_accuracy(mlp, split, "prune{sparsity=0.5 scope=global}")
    assert acc >= mlp.test_accuracy - 0.01
    weights = [layer.array for layer in weight_layers(comp.module)]
    total = sum(w.size for w in weights)
    assert sum(w.size - np.count_nonzero(w) for w in weights) == round(0.5 * total)
    assert len(masks(comp.module)) == 3  # the fine-tuning hook


def test_local_magnitude_pruning_to_half_loses_at_most_one_point(mlp, split):
    acc, _ = _compressed_accuracy(mlp, split, "prune{sparsity=0.5}")
    assert acc >= mlp.test_accuracy - 0.01


def test_svd_to_half_the_gemm_parameters_loses_at_most_one_point(mlp, split):
    acc, comp = _compressed_accuracy(mlp, split, "low-rank{ratio=0.5 scope=global}")
    params = sum(layer.array.size for layer in weight_layers(comp.module))
    dense = sum(w.size for k, w in mlp.weights.items() if k.endswith("weight"))
    assert params <= 0.5 * dense
    assert acc >= mlp.test_accuracy - 0.01


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_four_bit_weight_sharing_loses_at_most_half_a_point(which, request, split):
    model = request.getfixturevalue(which)
    acc, comp = _compressed_accuracy(model, split, "cluster{bits=4}")
    for layer in weight_layers(comp.module):
        assert len(np.unique(layer.array[layer.array != 0])) <= 16
    assert acc >= model.test_accuracy - 0.005


def test_channel_pruning_of_the_cnn_stays_sensible(cnn, split):
    acc, comp = _compressed_accuracy(cnn, split, "prune-channels{ratio=0.25}")
    assert acc >= 0.93
    assert comp.report.total_macs <= 0.7 * 18028800  # dense CNN at batch 450
