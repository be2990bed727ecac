"""Property tests of ``sparse-kernels``: CSR round trip, same results as the dense layer
within the summation-order bound, the cost rule respected, dense layers unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, count, rand, seeds, text

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp, GemmOp
from nnc.ir.ops_sparse import SparseGemmOp, csr_to_dense, dense_to_csr
from nnc.passes.sparse_kernels import SparseKernelsPass


def _sparse(rng, shape, sparsity):
    w = rand(rng, shape)
    w[rng.random(shape) < sparsity] = 0
    return w


@given(seed=seeds, n=st.integers(1, 12), k=st.integers(1, 12), sparsity=st.floats(0, 1))
def test_csr_round_trip(seed, n, k, sparsity):
    w = _sparse(np.random.default_rng(seed), (n, k), sparsity)
    row_ptr, col_idx, values = dense_to_csr(w)
    assert len(values) == np.count_nonzero(w) and row_ptr[-1] == len(values)
    assert np.array_equal(csr_to_dense(row_ptr, col_idx, values, k), w)


@given(
    seed=seeds,
    n=st.integers(1, 12),
    k=st.integers(1, 12),
    sparsity=st.floats(0, 1),
    conv=st.booleans(),
    trans_b=st.integers(0, 1),
    act=st.sampled_from(["none", "relu"]),
)
def test_sparse_layer_matches_dense(seed, n, k, sparsity, conv, trans_b, act):
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    if conv:
        x = b.add_input("x", (2, k, 3, 2))
        w = _sparse(rng, (n, k, 1, 1), sparsity)
        res = b.add_input("r", (2, n, 3, 2))
        y = b.insert(ConvOp(x, b.constant(w), b.constant(rand(rng, (n,))), res, activation=act))
        w2 = w.reshape(n, k)
    else:
        x = b.add_input("x", (2, k))
        w = _sparse(rng, (n, k) if trans_b else (k, n), sparsity)
        y = b.insert(
            GemmOp(x, b.constant(w), b.constant(rand(rng, (n,))), trans_b=trans_b, activation=act)
        )
        w2 = w if trans_b else w.T
    before = b.finish([("y", y)])
    real_sparsity = 1 - np.count_nonzero(w) / w.size
    p = SparseKernelsPass(min_sparsity_gemm=0.5, min_sparsity_conv=0.5)
    after = apply_pass(before, p)
    assert count(after, SparseGemmOp) == (real_sparsity >= 0.5)
    if real_sparsity < 0.5:
        assert text(after) == text(before)
        return
    ins = [rand(rng, (2, k, 3, 2)), rand(rng, (2, n, 3, 2))] if conv else [rand(rng, (2, k))]
    y0, y1 = interpret(before, ins)[0], interpret(after, ins)[0]
    xa = np.abs(ins[0]).astype(np.float64)
    mag = np.einsum("nk,bkhw->bnhw", np.abs(w2), xa) if conv else xa @ np.abs(w2).T
    assert (np.abs(y1.astype(np.float64) - y0) <= 2 * (k + 2) * U * (mag + 4) + 1e-7).all()


def test_dense_gemm_is_unchanged():
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.add_input("x", (1, 4))
    y = b.insert(GemmOp(x, b.constant(rand(rng, (4, 4))), None))
    module = b.finish([("y", y)])
    assert text(apply_pass(module, SparseKernelsPass())) == text(module)


def test_bad_options_raise():
    with pytest.raises(InvalidOptionError):
        SparseKernelsPass(min_sparsity_gemm=1.5)
