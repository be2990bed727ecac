"""Weight-shared layers: ``nn.codebook_gemm``, a gemm or 1x1 conv whose weight is codebook
indices.

What ``codebook-kernels`` turns a clustered ``nn.gemm`` (``trans_a=0``), ``nn.matmul``
with a constant 2-D B (W = B^T), or 1x1 ``nn.conv`` (stride 1, no padding, group 1)
into. The weight
W (N output rows, K inputs) is ``W[n, k] = codebook[idx[n, k]]`` with ``2^bits``
float32 centroids (the ``codebook`` operand, an f32 ``nn.constant`` of shape
``(2^bits,)``, unused entries zero) and the indices in the ``indices`` operand, a u8
``nn.constant`` in a blocked layout the native kernel reads directly (any SIMD width
divides the 16-column block):

* ``bits <= 4``: shape ``(ceil(N/16), K, 8)``; byte ``j`` of ``[nb, k]`` holds the index
  of column ``16*nb + j`` in its low nibble and of column ``16*nb + 8 + j`` in its high
  nibble (two indices per byte: 0.5 byte per weight);
* ``5 <= bits <= 8``: shape ``(ceil(N/16), K, 16)``, one byte per index.

Columns past N (the last block's padding) have index 0 and are never stored.

Semantics, with the fused gemm epilogue (``activation``/``act_alpha``/``act_beta``) and
an optional ``bias`` (N,)::

    layout "gemm":    x (..., K)     -> y (..., N)     y = act(x @ W^T + bias)
    layout "conv1x1": x (B, K, H, W) -> y (B, N, H, W) y[b, n] = act(sum_k W[n, k] x[b, k]
                                                                      + bias[n])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec, nn_op
from nnc.ir.ops_compute import EPILOGUE_PROPS
from nnc.ir.types import DYNAMIC

#: Output columns per index block.
BLOCK = 16


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def packed_shape(n: int, k: int, bits: int) -> tuple[int, int, int]:
    """Shape of the u8 ``indices`` constant of an (N, K) weight."""
    return (-(-n // BLOCK), k, BLOCK // 2 if bits <= 4 else BLOCK)


@nn_op(
    "nn.codebook_gemm",
    operands=("x", "indices", "codebook"),
    optional=("bias",),
    props={"n": ("int", None), "bits": ("int", None), "layout": ("str", "gemm"), **EPILOGUE_PROPS},
)
class CodebookGemmOp(NNOp):
    """Gemm / 1x1 conv with a codebook-indexed weight (see module docstring)."""

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, idx, book = ins[0], ins[1], ins[2]
        n, bits = p["n"], p["bits"]
        _require(1 <= bits <= 8, f"codebook_gemm bits must be in 1..8, got {bits}")
        _require(idx.dtype == "u8" and idx.rank == 3, f"indices must be rank-3 u8, got {idx}")
        k = idx.shape[1]
        _require(idx.shape == packed_shape(n, k, bits), f"indices {idx.shape} for N={n}, K={k}")
        _require(book.dtype == "f32" and book.shape == (1 << bits,), f"codebook {book.shape}")
        if p["layout"] == "gemm":
            _require(x.rank >= 2 and x.shape[-1] in (k, DYNAMIC), f"gemm x {x.shape}, K={k}")
            out = TensorSpec((*x.shape[:-1], n), x.dtype)
        elif p["layout"] == "conv1x1":
            _require(x.rank == 4 and x.shape[1] in (k, DYNAMIC), f"conv1x1 x {x.shape}, K={k}")
            out = TensorSpec((x.shape[0], n, *x.shape[2:]), x.dtype)
        else:
            raise ShapeError(f"unknown codebook_gemm layout {p['layout']!r}")
        for extra in ins[3:]:
            _require(extra.shape == (n,), f"bias shape {extra.shape} != ({n},)")
        return [out]

    def dense_weight(self) -> np.ndarray:
        """W as a dense (N, K) float32 array."""
        idx = self.indices.owner.prop("value").array
        book = self.codebook.owner.prop("value").array
        return decode_weight(idx, book, self.prop("n"), self.prop("bits"))


def pack_indices(idx: np.ndarray, bits: int) -> np.ndarray:
    """The blocked u8 ``indices`` array of an (N, K) integer index matrix."""
    n, k = idx.shape
    nb = -(-n // BLOCK)
    cols = np.zeros((nb * BLOCK, k), np.uint8)
    cols[:n] = idx
    blocks = cols.reshape(nb, BLOCK, k).transpose(0, 2, 1)  # (nb, K, 16)
    if bits > 4:
        return np.ascontiguousarray(blocks)
    half = BLOCK // 2
    return np.ascontiguousarray(blocks[:, :, :half] | (blocks[:, :, half:] << 4))


def unpack_indices(packed: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Inverse of ``pack_indices``: the (N, K) index matrix."""
    if bits <= 4:
        packed = np.concatenate([packed & 0xF, packed >> 4], axis=2)
    nb, k, _ = packed.shape
    return packed.transpose(0, 2, 1).reshape(nb * BLOCK, k)[:n]


def decode_weight(packed: np.ndarray, codebook: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Dense (N, K) float32 weight of packed indices and a codebook."""
    return np.asarray(codebook, np.float32)[unpack_indices(packed, n, bits)]


CODEBOOK_OPS = [CodebookGemmOp]
