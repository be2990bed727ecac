"""``fuse-activation`` fuses activations into the compressed gemms (``nn.sparse_gemm``,
``nn.codebook_gemm``) exactly, and the native kernels run the fused epilogue."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnc
from nnc.ir import GraphBuilder
from nnc.ir import ops_elementwise as oe
from nnc.ir.dialect import make_context
from nnc.ir.interpret import interpret
from nnc.ir.ops_codebook import CodebookGemmOp
from nnc.ir.ops_compute import GemmOp
from nnc.ir.ops_elementwise import UnaryOp
from nnc.ir.ops_sparse import SparseGemmOp
from nnc.passes.codebook_kernels import CodebookKernelsPass
from nnc.passes.fuse_activation import FuseActivationPass
from nnc.passes.sparse_kernels import SparseKernelsPass

ACTS = ["relu", "tanh", "sigmoid", "gelu", "leaky_relu"]


def _gemm_act(w, batch, act, rng):
    kind = {
        cls.KIND: cls
        for cls in vars(oe).values()
        if isinstance(cls, type) and issubclass(cls, UnaryOp) and getattr(cls, "KIND", None)
    }[act]
    b = GraphBuilder()
    x = b.add_input("x", (batch, w.shape[1]))
    c = b.constant(rng.standard_normal(w.shape[0]).astype(np.float32))
    y = b.insert(GemmOp(x, b.constant(w), c, trans_b=1))
    return b.finish([("y", b.insert(kind(y)))])


def _apply(module, *passes):
    out = module.clone()
    for p in passes:
        p.apply(make_context(), out)
    out.verify()
    return out


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 20),
    k=st.integers(1, 20),
    act=st.sampled_from(ACTS),
    sparse=st.booleans(),
)
def test_activation_fuses_exactly_into_compressed_gemms(seed, n, k, act, sparse):
    rng = np.random.default_rng(seed)
    if sparse:
        w = rng.standard_normal((n, k)).astype(np.float32) * (rng.random((n, k)) < 0.2)
        kernel, op_type = SparseKernelsPass(min_sparsity_gemm=0), SparseGemmOp
    else:
        w = rng.uniform(-1, 1, 5).astype(np.float32)[rng.integers(0, 5, (n, k))]
        kernel, op_type = CodebookKernelsPass(min_params=0), CodebookGemmOp
    module = _gemm_act(w, 3, act, rng)
    unfused = _apply(module, kernel)
    fused = _apply(unfused, FuseActivationPass())
    ops = [op for op in fused.walk() if isinstance(op, op_type)]
    assert len(ops) == 1 and ops[0].prop("activation") == act
    assert not [op for op in fused.walk() if isinstance(op, UnaryOp)]
    x = rng.standard_normal((3, k)).astype(np.float32)
    np.testing.assert_array_equal(interpret(fused, [x])[0], interpret(unfused, [x])[0])


@pytest.mark.parametrize("spec", ["cluster=4bit,codebook", "prune=0.95,sparse"])
def test_compiled_mlp_runs_the_fused_epilogue(mlp, split, spec):
    lib = nnc.compile(mlp.onnx(batch=1), compress=spec, threads=1)
    assert not [op for op in lib.module.walk() if isinstance(op, UnaryOp)]
    x = split.x_test[:3]
    for row in x:
        ref = interpret(lib.module, [row[None]])[0]
        np.testing.assert_allclose(lib.run([row[None]])[0], ref, rtol=1e-4, atol=1e-5)
