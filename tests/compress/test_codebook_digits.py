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
    assert spec.pipeline() == "cluster{bits=4},sparse-kernels,codebook-kernels,compact-weights"


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


def _clustered_gemm_model(n: int, k: int):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, k)).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_cluster_alone_keeps_only_large_gemms_as_codebook(mlp):
    from nnc.compiler import compile_model
    from nnc.compress.spec import IMPLIED_CODEBOOK_PARAMS

    big = _clustered_gemm_model(512, IMPLIED_CODEBOOK_PARAMS // 512)
    comp = compile_model(big, compress="cluster=4bit", build=False)
    ops = [op for op in comp.module.walk() if isinstance(op, CodebookGemmOp)]
    assert len(ops) == 1 and ops[0].prop("bits") == 4
    off = compile_model(big, compress="cluster=4bit,codebook=off", build=False)
    assert not [op for op in off.module.walk() if isinstance(op, CodebookGemmOp)]
    small = compile_model(mlp.onnx(batch=1), compress="cluster=4bit", build=False)
    assert not [op for op in small.module.walk() if isinstance(op, CodebookGemmOp)]
    x = np.random.default_rng(1).standard_normal((1, 512)).astype(np.float32)
    from nnc.ir.interpret import interpret

    np.testing.assert_allclose(
        interpret(comp.module, [x])[0], interpret(off.module, [x])[0], rtol=1e-4, atol=1e-4
    )
