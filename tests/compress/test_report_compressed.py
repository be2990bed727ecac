"""``--report`` and the ``--compress`` table count compressed layers by what they do and
store: ``nn.sparse_gemm`` its non-zero MACs and values + CSR index bytes,
``nn.codebook_gemm`` its dense MACs and packed indices + codebook bytes."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nnc.compiler import compile_model
from nnc.ir import GraphBuilder
from nnc.ir.dialect import make_context
from nnc.ir.ops_codebook import packed_shape
from nnc.ir.ops_compute import GemmOp
from nnc.passes.codebook_kernels import CodebookKernelsPass
from nnc.passes.sparse_kernels import SparseKernelsPass
from nnc.report import (
    compression_rows,
    human_bytes,
    human_count,
    layer_infos,
    module_weight_bytes,
)


def _gemm(w: np.ndarray, batch: int, rng):
    b = GraphBuilder()
    x = b.add_input("x", (batch, w.shape[1]))
    c = b.constant(rng.standard_normal(w.shape[0]).astype(np.float32))
    y = b.insert(GemmOp(x, b.constant(w), c, trans_b=1))
    return b.finish([("y", y)])


def _compressed(module, pass_):
    before = layer_infos(module)
    after = module.clone()
    pass_.apply(make_context(), after)
    after.verify()
    (info,) = [i for i in layer_infos(after) if i.op in ("nn.sparse_gemm", "nn.codebook_gemm")]
    (row,) = compression_rows(before, after)
    assert sum(i.weight_bytes for i in layer_infos(after)) == module_weight_bytes(after)
    return before[0], info, row


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    k=st.integers(1, 30),
    batch=st.integers(1, 4),
    density=st.floats(0.0, 1.0),
)
def test_sparse_gemm_counts_nonzero_macs_and_csr_bytes(seed, n, k, batch, density):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[rng.random((n, k)) >= density] = 0
    nnz = int(np.count_nonzero(w))
    dense, info, row = _compressed(_gemm(w, batch, rng), SparseKernelsPass(min_sparsity_gemm=0))
    assert info.op == "nn.sparse_gemm"
    assert info.macs == batch * nnz
    assert info.params == nnz + n  # non-zeros + bias: row_ptr/col_idx are not params
    assert info.weight_bytes == 4 * nnz + 4 * (n + 1) + 4 * nnz + 4 * n
    assert (row.params_after, row.macs_after) == (n * k + n, batch * nnz)
    assert (row.bytes_before, row.bytes_after) == (dense.weight_bytes, info.weight_bytes)
    assert row.sparsity == (n * k - nnz) / (n * k + n)
    assert row.op_after == "nn.sparse_gemm"


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    k=st.integers(1, 30),
    batch=st.integers(1, 4),
    values=st.sampled_from([1, 5, 16, 17, 200]),
)
def test_codebook_gemm_counts_dense_macs_and_packed_bytes(seed, n, k, batch, values):
    rng = np.random.default_rng(seed)
    book = rng.uniform(0.5, 1.5, values).astype(np.float32)  # no zero values
    w = book[rng.integers(0, values, (n, k))]
    bits = 4 if len(np.unique(w)) <= 16 else 8
    dense, info, row = _compressed(_gemm(w, batch, rng), CodebookKernelsPass(min_params=0))
    assert info.op == "nn.codebook_gemm"
    assert info.macs == dense.macs == batch * n * k
    assert info.params == dense.params == n * k + n  # one weight per index + bias
    assert info.weight_bytes == int(np.prod(packed_shape(n, k, bits))) + 4 * (1 << bits) + 4 * n
    assert (row.params_after, row.macs_after, row.bytes_after) == (
        n * k + n,
        batch * n * k,
        info.weight_bytes,
    )
    assert row.distinct == (len(np.unique(w)) if n * k + n > 256 else 0)


def _onnx_gemm(w: np.ndarray):
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, w.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, w.shape[0]])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_compile_report_and_table_show_compressed_layers():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 128)).astype(np.float32)
    w[rng.random(w.shape) < 0.95] = 0
    nnz = int(np.count_nonzero(w))
    comp = compile_model(_onnx_gemm(w), compress="sparse", build=False)
    (layer,) = comp.report.layers
    assert (layer.op, layer.macs, layer.params) == ("nn.sparse_gemm", 2 * nnz, nnz)
    lines = "\n".join(comp.report.compression_lines)
    assert re.search(r"\w+ +nn.gemm -> sparse_gemm +8,192 -> 8,192 ", lines), lines
    assert f"{human_count(2 * 64 * 128)} -> {human_count(2 * nnz)}" in lines
    assert f"32.0 KiB -> {human_bytes(layer.weight_bytes)}" in lines
