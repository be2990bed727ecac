"""Reference semantics of the weight-shared ops (``nn.codebook_gemm``); importing this
module registers them with the interpreter (``nnc.ir.interpret``)."""

from __future__ import annotations

import numpy as np

from nnc.ir.interpret import _epilogue, _impl
from nnc.ir.ops_codebook import CodebookGemmOp, decode_weight


@_impl(CodebookGemmOp)
def _codebook_gemm(op: CodebookGemmOp, x, indices, codebook, *extra) -> np.ndarray:
    w = decode_weight(indices, codebook, op.prop("n"), op.prop("bits")).astype(np.float64)
    if op.prop("layout") == "conv1x1":
        y = np.einsum("nk,bkhw->bnhw", w, x.astype(np.float64))
        if extra:
            y = y + extra[0].astype(np.float64)[None, :, None, None]
        return _epilogue(op, y.astype(np.float32))
    y = x.astype(np.float64) @ w.T
    if extra:
        y = y + extra[0].astype(np.float64)
    return _epilogue(op, y.astype(np.float32))
