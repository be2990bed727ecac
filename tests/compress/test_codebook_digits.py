"""``--compress cluster=4bit,codebook`` on the trained digits MLP: the library keeps 4-bit
indices (weights ~6x smaller: biases and the codebooks stay f32) and computes what the
dense-decoded clustered model computes."""

from __future__ import annotations

import numpy as np

import nnc
from nnc.compress.spec import parse_compress
from nnc.ir.ops_codebook import CodebookGemmOp


def test_spec_item_appends_the_pass():
    spec = parse_compress("codebook,cluster=4bit,sparse")
    assert spec.pipeline() == "cluster{bits=4},sparse-kernels,codebook-kernels"


def test_codebook_mlp_equals_dense_clustered_mlp_and_is_smaller(mlp, split):
    dense = nnc.compile(mlp.onnx(batch=1), threads=1, compress="cluster=4bit")
    cb = nnc.compile(mlp.onnx(batch=1), threads=1, compress="cluster=4bit,codebook")
    ops = [op for op in cb.module.walk() if isinstance(op, CodebookGemmOp)]
    assert ops and all(op.prop("bits") == 4 for op in ops)
    assert cb.report.total_weight_bytes * 5 < dense.report.total_weight_bytes
    for x in split.x_test[:20]:
        np.testing.assert_allclose(
            cb.run([x[None]])[0], dense.run([x[None]])[0], rtol=1e-4, atol=1e-4
        )


def test_pruned_and_clustered_mlp_keeps_four_bit_indices(mlp, split):
    spec = "prune=0.8,cluster=4bit,codebook"
    assert "cluster{bits=4 reserve-zero=true}" in parse_compress(spec).pipeline()
    cb = nnc.compile(mlp.onnx(batch=1), threads=1, compress=spec)
    ops = [op for op in cb.module.walk() if isinstance(op, CodebookGemmOp)]
    assert ops and all(op.prop("bits") == 4 for op in ops)
    x = split.x_test[:1]
    from nnc.ir.interpret import interpret

    np.testing.assert_allclose(cb.run([x])[0], interpret(cb.module, [x])[0], rtol=1e-4, atol=1e-4)
