"""Acceptance: 25% channel pruning of ResNet-18 (32x32) removes >= 35% of the MACs, and
the pruned model still compiles, runs and matches its interpreter."""

from __future__ import annotations

import numpy as np

import nnc
from nnc.compiler import compile_model
from nnc.ir.interpret import interpret
from nnc.testing.model_zoo import resnet18

SPEC = "fold-constants,cse,fold-batchnorm,prune-channels{ratio=0.25},fuse-activation,dce"


def test_resnet18_channel_pruning_shrinks_macs_and_runs():
    model = resnet18(image_size=32)
    dense = compile_model(model, build=False)
    pruned = nnc.compile(model, passes=SPEC, threads=1)
    before, after = dense.report.total_macs, pruned.report.total_macs
    assert after <= 0.65 * before, (before, after)
    assert pruned.report.total_params < 0.65 * dense.report.total_params
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = pruned.run([x])[0]
    want = interpret(pruned.module, [x])[0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert any("pruned nn.conv output channels" in m for _, m in pruned.report.pass_lines)
