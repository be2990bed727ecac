"""Sparse weight layers: ``nn.sparse_gemm``, a gemm or 1x1 conv with a CSR weight.

What ``sparse-kernels`` turns a pruned ``nn.gemm`` (``trans_a=0``, ``alpha=1``) or 1x1
``nn.conv`` (stride 1, no padding, group 1) into. The weight W (N output rows, K inputs)
is stored in CSR form: the non-zero values are the ``values`` operand (an f32
``nn.constant`` of shape (nnz,)), the structure is in the weight-valued properties
``row_ptr`` (i32, N + 1 entries) and ``col_idx`` (i32, nnz entries, increasing within a
row). So the model stores nnz floats + (N + 1 + nnz) int32 instead of N*K floats.

Semantics, with the fused epilogue of gemm/conv (``activation``/``act_alpha``/
``act_beta``; optional ``bias`` (N,) and, for ``layout="conv1x1"``, ``residual``)::

    layout "gemm":    x (M, K)        -> y (M, N)        y = act(x @ W^T + bias)
    layout "conv1x1": x (B, K, H, W)  -> y (B, N, H, W)  y[b, n] = act(sum_k W[n, k] x[b, k]
                                                                       + bias[n] + residual)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec, nn_op
from nnc.ir.ops_compute import EPILOGUE_PROPS
from nnc.ir.types import DYNAMIC


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


@nn_op(
    "nn.sparse_gemm",
    operands=("x", "values"),
    optional=("bias", "residual"),
    props={
        "row_ptr": ("weight", None),
        "col_idx": ("weight", None),
        "k": ("int", None),
        "layout": ("str", "gemm"),
        **EPILOGUE_PROPS,
    },
)
class SparseGemmOp(NNOp):
    """Gemm / 1x1 conv with a CSR weight (see module docstring)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, values = ins[0], ins[1]
        row_ptr, col_idx = p["row_ptr"].array, p["col_idx"].array
        _require(row_ptr.ndim == 1 and len(row_ptr) >= 2, "row_ptr must have N + 1 entries")
        _require(row_ptr.dtype == np.int32 and col_idx.dtype == np.int32, "CSR indices must be i32")
        n, k = len(row_ptr) - 1, p["k"]
        _require(values.shape == (int(row_ptr[-1]),), f"values {values.shape} != (nnz,)")
        _require(col_idx.shape == values.shape, "col_idx and values differ in length")
        if p["layout"] == "gemm":
            _require(x.rank == 2 and x.shape[1] in (k, DYNAMIC), f"gemm x {x.shape}, k={k}")
            out = TensorSpec((x.shape[0], n), x.dtype)
        elif p["layout"] == "conv1x1":
            _require(x.rank == 4 and x.shape[1] in (k, DYNAMIC), f"conv1x1 x {x.shape}, k={k}")
            out = TensorSpec((x.shape[0], n, *x.shape[2:]), x.dtype)
        else:
            raise ShapeError(f"unknown sparse_gemm layout {p['layout']!r}")
        for extra in ins[2:]:
            _require(extra.shape in ((n,), out.shape), f"epilogue operand shape {extra.shape}")
        return [out]

    def dense_weight(self) -> np.ndarray:
        """W as a dense (N, K) float32 array."""
        row_ptr = self.prop("row_ptr").array
        col_idx = self.prop("col_idx").array
        values = self.values.owner.prop("value").array
        return csr_to_dense(row_ptr, col_idx, values, self.prop("k"))


def csr_to_dense(row_ptr, col_idx, values, k: int) -> np.ndarray:
    """Dense (N, K) float32 matrix of a CSR triple."""
    n = len(row_ptr) - 1
    w = np.zeros((n, k), np.float32)
    rows = np.repeat(np.arange(n), np.diff(row_ptr))
    w[rows, col_idx] = values
    return w


def dense_to_csr(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row_ptr i32, col_idx i32, values f32) of a dense (N, K) matrix (zeros dropped)."""
    rows, cols = np.nonzero(w)
    row_ptr = np.zeros(w.shape[0] + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=row_ptr[1:])
    return row_ptr, cols.astype(np.int32), w[rows, cols].astype(np.float32)


SPARSE_OPS = [SparseGemmOp]
