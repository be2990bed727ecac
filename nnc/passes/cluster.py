"""Weight sharing (Deep Compression): per-layer k-means of the weights to 2^bits values.

Before (``cluster{bits=2}``)::

    %w = "nn.constant"() <{value = #nn.weight<"f32", [6], [0.11, 0.9, -0.5, 0.12, 0.0, 0.88]>}>

After (at most 2^bits distinct non-zero values; zeros stay zero)::

    %w = "nn.constant"() <{value = #nn.weight<"f32", [6], [0.115, 0.89, -0.5, 0.115, 0.0, 0.89]>}>
         {nn.codebook = #nn.weight<"f32", [3], [-0.5, 0.115, 0.89]>}

Preconditions: targets are the f32 constant weight of every ``nn.conv``, ``nn.gemm``
and rank-2 ``nn.matmul`` with more than 2^bits non-zero entries (biases are not
clustered); other layers are left unchanged (reported).

Math: Lloyd's k-means in one dimension over the layer's non-zero weights (pruned zeros
are not a cluster member: they stay exactly zero, so pruning + sharing compose), with
*linear* initialisation (centroids evenly spaced between min and max, which Deep
Compression found best because large weights keep their own centroids), ``iters``
iterations, empty clusters dropped. The last step is an assignment: every weight is
replaced by its **nearest** centroid.

Storage: this pass leaves float32 constants holding the shared values, so every fp32
kernel (conv, Winograd, sparse...) still applies. To keep the *library* small, run
``codebook-kernels`` after it (``--compress cluster=4bit,codebook``): gemms, matmuls by
a constant and 1x1 convs then store 4-bit (<= 16 values) or 8-bit indices + the codebook
and decode per register tile at run time (``kernels/codebook_gemm.py``; ``--compress
cluster=4bit`` alone does so for gemms of >= 262144 weights); other layers (KxK convs)
keep the decoded f32 weights. The
compressed model file (``nnc --emit nncz``: codebook + Huffman-coded indices, see
``nnc.compress.nncz``) holds the Huffman-coded form. ``reserve-zero=true`` clusters a
layer that has zeros (pruned) to ``2^bits - 1`` values, so zero + centroids still fit a
``bits``-wide index. The codebook of each layer is recorded on its constant as
``nn.codebook`` (f32): the fine-tuning hook (Deep Compression fine-tunes the centroids
with gradients summed per cluster).

Invariant (property tests): at most 2^bits distinct non-zero values per layer, zeros
unchanged, every weight maps to its nearest codebook entry.

Numeric contract: bounded error, elementwise ``|w - w'| <= max_j radius_j`` (the largest
distance of a weight to its centroid), so every output changes by at most
``|W - W'| (*) |X|``; no bound on accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnc.errors import InvalidOptionError
from nnc.ir.weights import WeightAttr
from nnc.passes._common import Tally
from nnc.passes._weights import replace_weight, weight_layers

CODEBOOK_ATTR = "nn.codebook"


def kmeans_1d(values: np.ndarray, k: int, iters: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(sorted centroids, index of the nearest centroid per value) by linear-init Lloyd."""
    v = values.astype(np.float64).reshape(-1)
    lo, hi = float(v.min()), float(v.max())
    centroids = np.linspace(lo, hi, k) if hi > lo else np.array([lo])
    for _ in range(iters):
        idx = _nearest(v, centroids)
        counts = np.bincount(idx, minlength=len(centroids))
        sums = np.bincount(idx, weights=v, minlength=len(centroids))
        keep = counts > 0
        new = sums[keep] / counts[keep]
        if len(new) == len(centroids) and np.allclose(new, centroids, rtol=0, atol=0):
            break
        centroids = np.sort(new)
    centroids = centroids.astype(np.float32).astype(np.float64)
    return centroids, _nearest(v, centroids)


def _nearest(v: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted ``centroids`` for each value (ties: lower)."""
    if len(centroids) == 1:
        return np.zeros(len(v), np.int64)
    mids = (centroids[1:] + centroids[:-1]) / 2
    idx = np.searchsorted(mids, v, side="left")
    # Exact nearest check against both neighbours (midpoints can round).
    lower = np.clip(idx - 1, 0, len(centroids) - 1)
    better = np.abs(v - centroids[lower]) <= np.abs(v - centroids[idx])
    return np.where(better & (idx > 0), lower, idx)


@dataclass(frozen=True)
class ClusterPass(ModulePass):
    """Share weights through a per-layer k-means codebook (see module docstring)."""

    name = "cluster"

    bits: int = 4
    """Index width: at most 2^bits distinct non-zero weights per layer (1..8)."""

    iters: int = 20
    """Lloyd iterations (fewer if converged)."""

    reserve_zero: bool = False
    """Layers with zeros get ``2^bits - 1`` centroids (zero takes the last code)."""

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 8:
            raise InvalidOptionError(f"cluster: bits must be in 1..8, got {self.bits}")
        if self.iters < 1:
            raise InvalidOptionError(f"cluster: iters must be >= 1, got {self.iters}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        for layer in weight_layers(op):
            w = layer.array
            nz = w != 0
            k = (1 << self.bits) - (1 if self.reserve_zero and not nz.all() else 0)
            if k < 1:
                tally.decline(layer.op, "bits=1 with reserve-zero leaves no centroid")
                continue
            if np.count_nonzero(nz) <= k:
                tally.decline(layer.op, f"weight has <= {k} non-zero entries")
                continue
            centroids, idx = kmeans_1d(w[nz], k, self.iters)
            shared = np.zeros(w.shape, np.float32)
            shared[nz] = centroids[idx].astype(np.float32)
            replace_weight(
                layer, shared, {CODEBOOK_ATTR: WeightAttr.from_array(centroids.astype(np.float32))}
            )
            tally.did(f"clustered {layer.op.name} weights to {len(centroids)} values")
        tally.record()
