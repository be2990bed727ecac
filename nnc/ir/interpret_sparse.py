"""Reference semantics of the sparse weight ops (``nn.sparse_gemm``); importing this
module registers them with the interpreter (``nnc.ir.interpret``)."""

from __future__ import annotations

import numpy as np

from nnc.ir.interpret import _epilogue, _impl
from nnc.ir.ops_sparse import SparseGemmOp, csr_to_dense


@_impl(SparseGemmOp)
def _sparse_gemm(op: SparseGemmOp, x, values, *extra) -> np.ndarray:
    w = csr_to_dense(
        op.prop("row_ptr").array, op.prop("col_idx").array, values, op.prop("k")
    ).astype(np.float64)
    x64 = x.astype(np.float64)
    extras = iter(extra)
    if op.prop("layout") == "gemm":
        y = x64 @ w.T
        if op.operand_named("bias") is not None:
            y = y + next(extras).astype(np.float64)
    else:
        y = np.einsum("nk,bkhw->bnhw", w, x64)
        if op.operand_named("bias") is not None:
            y = y + next(extras).astype(np.float64).reshape(1, -1, 1, 1)
    if op.operand_named("residual") is not None:
        y = y + next(extras)
    return _epilogue(op, y.astype(np.float32))
