"""Magnitude pruning: zero the smallest weights (unstructured, N:M or blocks).

Before (``prune{sparsity=0.5}``)::

    %w = "nn.constant"() <{value = #nn.weight<"f32", [2, 2], [1.0, -0.1, 0.3, -2.0]>}>
    %y = "nn.gemm"(%x, %w, %c)

After::

    %w = "nn.constant"() <{value = #nn.weight<"f32", [2, 2], [1.0, 0.0, 0.0, -2.0]>}>
         {nn.prune_mask = #nn.weight<"u8", [2, 2], [1, 0, 0, 1]>}
    %y = "nn.gemm"(%x, %w, %c)

Targets: the weight of every ``nn.conv``, ``nn.gemm`` and rank-2 ``nn.matmul`` that is an
f32 ``nn.constant`` (biases are not pruned). Options:

* ``pattern=unstructured`` (default): per weight (``scope=local``) the
  ``k = round(sparsity * n)`` entries of smallest |w| are set to 0; with
  ``scope=global`` one threshold over all targets: the ``round(sparsity * sum n)``
  smallest |w| of the whole model (layers with small weights lose more).
* ``pattern=N:M`` (e.g. ``2:4``): in every group of M consecutive weights along the
  reduction axis (input channels innermost for convs: layout (M, KH, KW, C); K for
  gemm) the M-N smallest are zeroed; ``sparsity`` is ignored (it is 1 - N/M). A
  trailing partial group (reduction length not a multiple of M) is left dense.
* ``pattern=RxC`` (e.g. ``4x4``): blocks of R output rows by C reduction columns of the
  (rows, reduction) matrix (conv: (M, C*KH*KW)) are scored by their mean |w|; the
  ``round(sparsity * blocks)`` lowest (per layer, or over all layers with
  ``scope=global``) are zeroed. Edge blocks may be smaller.

Ties are broken by position (stable sort), so the result is deterministic. The keep-mask
is recorded on the new constant as ``nn.prune_mask`` (uint8, weight layout): the
fine-tuning hook (``nnc.passes._weights.masks(module)``) keeps pruned weights at zero.

Invariant (checked by the property tests): exactly the stated number of entries are
zeroed, every surviving weight is bit-identical, and every pruned |w| is <= every
surviving |w| in the same selection unit (layer, model, N:M group; for blocks: the
block means).

Preconditions: none beyond constant f32 weights; other layers are left unchanged.

Numeric contract: bounded change. Per layer the output changes by exactly the
contribution of the zeroed weights: ``|after - before| <= |W - W'| (*) |X|`` (the
convolution/product of the removed weights' magnitudes with the input's), plus float32
rounding of the unchanged arithmetic; no bound on accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnc.errors import InvalidOptionError
from nnc.ir.weights import WeightAttr
from nnc.passes._common import Tally
from nnc.passes._weights import MASK_ATTR, WeightLayer, as_rows, from_rows, replace_weight
from nnc.passes._weights import weight_layers as _weight_layers

_NM = re.compile(r"(\d+):(\d+)\Z")
_BLOCK = re.compile(r"(\d+)x(\d+)\Z")


def smallest_mask(magnitudes: np.ndarray, k: int) -> np.ndarray:
    """Boolean keep-mask of ``magnitudes`` with its ``k`` smallest entries False (stable)."""
    flat = magnitudes.reshape(-1)
    keep = np.ones(flat.size, bool)
    if k > 0:
        keep[np.argsort(flat, kind="stable")[:k]] = False
    return keep.reshape(magnitudes.shape)


def nm_mask(rows: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep-mask keeping the n largest |w| of every m consecutive entries of each row."""
    keep = np.ones(rows.shape, bool)
    full = rows.shape[1] // m * m
    groups = np.abs(rows[:, :full]).reshape(rows.shape[0], -1, m)
    order = np.argsort(groups, axis=2, kind="stable")[:, :, : m - n]
    gmask = np.ones(groups.shape, bool)
    np.put_along_axis(gmask, order, False, axis=2)
    keep[:, :full] = gmask.reshape(rows.shape[0], full)
    return keep


def block_scores(rows: np.ndarray, r: int, c: int) -> np.ndarray:
    """Mean |w| of every r x c block (edge blocks partial): shape (ceil(R/r), ceil(C/c))."""
    nr, nc = -(-rows.shape[0] // r), -(-rows.shape[1] // c)
    padded = np.full((nr * r, nc * c), np.nan)
    padded[: rows.shape[0], : rows.shape[1]] = np.abs(rows)
    return np.nanmean(padded.reshape(nr, r, nc, c), axis=(1, 3))


def expand_blocks(block_keep: np.ndarray, r: int, c: int, shape) -> np.ndarray:
    """Block keep-mask -> element keep-mask of ``shape``."""
    return np.repeat(np.repeat(block_keep, r, axis=0), c, axis=1)[: shape[0], : shape[1]]


@dataclass(frozen=True)
class PrunePass(ModulePass):
    """Magnitude pruning of conv/gemm/matmul weights (see module docstring)."""

    name = "prune"

    sparsity: float = 0.5
    """Fraction of weights (or blocks) to zero, 0 <= s <= 1 (ignored for N:M)."""

    scope: str = "local"
    """``local``: the fraction per layer; ``global``: one threshold over all layers."""

    pattern: str = "unstructured"
    """``unstructured``, ``N:M`` (e.g. 2:4) or ``RxC`` blocks (e.g. 4x4)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity <= 1.0:
            raise InvalidOptionError(f"prune: sparsity must be in [0, 1], got {self.sparsity}")
        if self.scope not in ("local", "global"):
            raise InvalidOptionError(f"prune: scope must be local or global, got '{self.scope}'")
        self.parsed_pattern()

    def parsed_pattern(self) -> tuple[str, int, int]:
        """("unstructured", 0, 0), ("nm", N, M) or ("block", R, C)."""
        if self.pattern == "unstructured":
            return ("unstructured", 0, 0)
        if (mt := _NM.match(self.pattern)) and 0 < int(mt[1]) <= int(mt[2]):
            return ("nm", int(mt[1]), int(mt[2]))
        if (mt := _BLOCK.match(self.pattern)) and int(mt[1]) > 0 and int(mt[2]) > 0:
            return ("block", int(mt[1]), int(mt[2]))
        raise InvalidOptionError(
            f"prune: pattern must be unstructured, N:M (e.g. 2:4) or RxC (e.g. 4x4), "
            f"got '{self.pattern}'"
        )

    def keep_masks(self, layers: list[WeightLayer]) -> list[np.ndarray]:
        """Keep-masks in each layer's (rows, reduction) layout (see ``as_rows``)."""
        kind, a, b = self.parsed_pattern()
        rows = [as_rows(layer, channels_last=kind == "nm") for layer in layers]
        if kind == "nm":
            return [nm_mask(r, a, b) for r in rows]
        if kind == "unstructured":
            units = [np.abs(r) for r in rows]
        else:
            units = [block_scores(r, a, b) for r in rows]
        if self.scope == "local":
            masks = [smallest_mask(u, int(round(self.sparsity * u.size))) for u in units]
        else:
            flat = np.concatenate([u.reshape(-1) for u in units]) if units else np.zeros(0)
            keep = smallest_mask(flat, int(round(self.sparsity * flat.size)))
            splits = np.cumsum([u.size for u in units])[:-1]
            masks = [m.reshape(u.shape) for m, u in zip(np.split(keep, splits), units)]
        if kind == "block":
            masks = [expand_blocks(m, a, b, r.shape) for m, r in zip(masks, rows)]
        return masks

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        layers = _weight_layers(op)
        channels_last = self.parsed_pattern()[0] == "nm"
        for layer, keep in zip(layers, self.keep_masks(layers)):
            if keep.all():
                continue
            rows = as_rows(layer, channels_last)
            mask = from_rows(layer, keep, channels_last)
            pruned = from_rows(layer, np.where(keep, rows, np.float32(0)), channels_last)
            replace_weight(layer, pruned, {MASK_ATTR: WeightAttr.from_array(mask.astype(np.uint8))})
            tally.did(f"pruned {layer.op.name} weights")
        tally.record()
