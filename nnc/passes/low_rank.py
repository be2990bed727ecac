"""Low-rank factorization: SVD for gemm/matmul/1x1 convs, Tucker-2 (HOSVD) or CP for KxK convs.

Before (gemm, W = B^T of shape (N, K), ``low-rank{ratio=0.5}``)::

    %y = "nn.gemm"(%x, %B, %c) <{trans_b = 1, activation = "relu"}>     // N*K params

After (rank r = floor(ratio * N*K / (N + K)))::

    %t = "nn.gemm"(%x, %V) <{trans_b = 1}>                 // V: (r, K) = V_r^T
    %y = "nn.gemm"(%t, %U, %c) <{trans_b = 1, activation = "relu"}>   // U: (N, r) = U_r S_r

1x1 conv (M, C): ``conv1x1(C -> r, original strides/pads) -> conv1x1(r -> M) + bias,
residual, activation``. KxK conv (Tucker-2)::

    conv1x1(C -> r_in, weight U_in^T) -> convKxK(r_in -> r_out, core G, original strides,
    pads, dilations) -> conv1x1(r_out -> M, weight U_out) + bias, residual, activation

with ``U_out`` / ``U_in`` the leading left singular vectors of the mode-0 (M, C*K*K) and
mode-1 (C, M*K*K) unfoldings of W (HOSVD) and ``G = W x0 U_out^T x1 U_in^T``. Padding
moves to the core conv: the first 1x1 conv has no bias, so it maps zero padding to zero.

KxK conv, ``method=cp`` (CP-ALS, Lebedev et al. 2015; math in ``passes/_cp.py``)::

    conv1x1(C -> R, weight B^T) -> conv KHx1 depthwise (R groups, weight H, stride/pad/
    dilation of the H axis) -> conv 1xKW depthwise (R groups, weight V, those of the W
    axis) -> conv1x1(R -> M, weight A*lam) + bias, residual, activation

The kernel is separable per rank-1 term, so zero padding split per axis equals the 2-D
zero padding of the original conv.

Rank choice: ``energy=e`` (0 < e <= 1) keeps the fewest singular values whose squares
sum to at least e of the total (per mode for Tucker); otherwise ``ratio`` is the target
fraction of the layer's parameters (Tucker: ranks r = rho*C, rho*M with rho solving
``rho^2 C M K^2 + rho (C^2 + M^2) = ratio C M K^2``). A layer is skipped (left
unchanged, reported) when the factorized form would not have fewer MACs, when its
weight is not a constant, or when it is grouped. CP: ``rank=R`` fixes R, else
``R = floor(ratio * M C KH KW / (M + C + KH + KW))`` (parameters), ``energy`` is not used
(CP has no singular values: an option error).

Preconditions: static shapes; f32 constant weights; gemm with ``trans_a=0``.

Numeric contract: bounded error (Eckart-Young). SVD: the weight error is
``||W - W_r||_2 = sigma_{r+1}``, so every output row changes by at most
``sigma_{r+1} * ||x_row||_2`` (1x1 conv: per pixel, over channels) plus float32
rounding. Tucker-2 (HOSVD): ``||W - W'||_F^2 <= sum of the discarded squared singular
values of both unfoldings``, and the output change is ``conv(x, W - W')``. CP: no a-priori
bound (ALS fit ``||W - W'||_F`` is what it is; exact when R reaches ``_cp.rank_bound``);
the output change is ``conv(x, W - W')``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from nnc.errors import InvalidOptionError
from nnc.ir import ops_compute as oc
from nnc.ir.types import shape_of
from nnc.passes._common import Tally
from nnc.passes._cp import cp_decompose
from nnc.passes._weights import WeightLayer, as_rows, weight_layers
from nnc.report import count_macs

#: Discardable attribute on the ops of a factorized layer: its rank (Tucker: the output rank).
RANK_ATTR = "nn.rank"


def energy_rank(s: np.ndarray, energy: float) -> int:
    """Fewest leading singular values whose squared sum reaches ``energy`` of the total."""
    e = np.cumsum(s.astype(np.float64) ** 2)
    if e[-1] <= 0:
        return 1
    return int(min(len(s), np.searchsorted(e / e[-1], energy - 1e-12) + 1))


def svd_factors(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(U_r S_r, V_r^T) of the (rows, cols) matrix ``w`` in float64."""
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    return u[:, :rank] * s[:rank], vt[:rank]


def left_singular(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(singular values, left singular vectors) of a wide matrix, descending, via the
    eigendecomposition of the Gram matrix ``a a^T`` (rows x rows): much faster than a
    full SVD for the (M, C*K*K) unfoldings of conv kernels, which are wide."""
    a64 = a.astype(np.float64)
    if a64.shape[0] > a64.shape[1]:
        u, s, _ = np.linalg.svd(a64, full_matrices=False)
        return s, u
    evals, evecs = np.linalg.eigh(a64 @ a64.T)
    order = np.argsort(evals)[::-1]
    return np.sqrt(np.clip(evals[order], 0, None)), evecs[:, order]


def tucker2(w: np.ndarray, r_out: int, r_in: int):
    """HOSVD Tucker-2 of a (M, C, KH, KW) kernel: (U_out (M, r_out), core, U_in (C, r_in))."""
    w64 = w.astype(np.float64)
    m, c, kh, kw = w.shape
    u_out = left_singular(w64.reshape(m, -1))[1][:, :r_out]
    u_in = left_singular(w64.transpose(1, 0, 2, 3).reshape(c, -1))[1][:, :r_in]
    core = np.einsum("mchw,mr->rchw", w64, u_out, optimize=True)
    core = np.einsum("rchw,cs->rshw", core, u_in, optimize=True)
    return u_out, core, u_in


def _svd_kind(layer: WeightLayer) -> bool:
    op = layer.op
    if isinstance(op, oc.GemmOp):
        return not op.prop("trans_a")
    return op.prop("group") == 1 and layer.array.shape[2:] == (1, 1)


def global_ranks(mats: list[np.ndarray], ratio: float) -> dict[int, int]:
    """Ranks (by position in ``mats``) keeping about ``ratio`` of the total parameters.

    Greedy: repeatedly take the unused singular value with the largest relative energy
    (sigma^2 / ||W||_F^2) per parameter it costs (n + k), while the total stays within
    budget; a layer whose factorized cost would reach its dense cost counts as dense.
    Every layer keeps rank >= 1.
    """
    total = sum(w.size for w in mats)
    budget = ratio * total
    spectra = [np.linalg.svd(w.astype(np.float64), compute_uv=False) for w in mats]
    ranks = [1] * len(mats)

    def cost(i: int, r: int) -> int:
        n, k = mats[i].shape
        return min(r * (n + k), n * k)

    used = sum(cost(i, 1) for i in range(len(mats)))
    cands = []
    for i, s in enumerate(spectra):
        e = s**2 / max(float((s**2).sum()), 1e-300)
        n, k = mats[i].shape
        cands += [(-e[j] / (n + k), i, j) for j in range(1, len(s))]
    for _, i, j in sorted(cands):
        if j != ranks[i]:
            continue  # take singular values of a layer in order only
        extra = cost(i, j + 1) - cost(i, j)
        if used + extra > budget:
            continue
        ranks[i], used = j + 1, used + extra
    return dict(enumerate(ranks))


_SVD = ("auto", "svd")


def _f32(a: np.ndarray) -> oc.ConstantOp:
    return oc.ConstantOp(value=np.ascontiguousarray(a, dtype=np.float32))


@dataclass(frozen=True)
class LowRankPass(ModulePass):
    """Factorize weight layers into thinner ones (see module docstring)."""

    name = "low-rank"

    ratio: float = 0.5
    """Target fraction of each layer's parameters (ignored when ``energy`` > 0)."""

    energy: float = 0.0
    """If > 0: keep the fewest singular values holding this fraction of the energy."""

    method: str = "auto"
    """``auto`` (SVD for gemm/matmul/1x1 conv, Tucker-2 for KxK conv), ``svd`` (only
    gemm/matmul/1x1 conv), ``tucker`` (only KxK convs) or ``cp`` (only KxK convs, CP)."""

    rank: int = 0
    """CP only: the rank R (0: from ``ratio``)."""

    iters: int = 60
    """CP only: ALS sweeps (fewer when the fit stops improving)."""

    min_params: int = 0
    """Layers with fewer weight parameters are left alone."""

    scope: str = "local"
    """``local``: ``ratio`` per layer; ``global``: SVD ranks chosen jointly so the SVD
    layers together keep ``ratio`` of their parameters, picking singular values by
    relative energy (sigma_i^2 / ||W||_F^2) per parameter they cost (Tucker layers
    still use the per-layer ratio)."""

    def __post_init__(self) -> None:
        if self.method == "cp" and self.energy > 0:
            raise InvalidOptionError(
                "low-rank: energy does not apply to method=cp; use ratio or rank"
            )
        if self.rank < 0 or self.iters < 1:
            raise InvalidOptionError(
                f"low-rank: rank must be >= 0 and iters >= 1, got {self.rank}, {self.iters}"
            )
        if self.method not in ("auto", "svd", "tucker", "cp"):
            raise InvalidOptionError(
                f"low-rank: method must be auto, svd, tucker or cp, got '{self.method}'"
            )
        if not 0.0 < self.ratio <= 1.0:
            raise InvalidOptionError(f"low-rank: ratio must be in (0, 1], got {self.ratio}")
        if self.scope not in ("local", "global"):
            raise InvalidOptionError(f"low-rank: scope must be local or global, got '{self.scope}'")
        if not 0.0 <= self.energy <= 1.0:
            raise InvalidOptionError(f"low-rank: energy must be in [0, 1], got {self.energy}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        layers = [
            layer
            for layer in weight_layers(op, (oc.ConvOp, oc.GemmOp))
            if layer.array.size >= self.min_params
        ]
        ranks: dict[int, int] = {}
        if self.scope == "global" and self.energy == 0:
            svd_layers = [x for x in layers if _svd_kind(x)]
            chosen = global_ranks([as_rows(x) for x in svd_layers], self.ratio)
            ranks = {id(x.op): chosen[i] for i, x in enumerate(svd_layers)}
        for layer in layers:
            if len(list(layer.const.results[0].uses)) != 1:
                tally.decline(layer.op, "weight is shared with another layer")
                continue
            problem = self._factorize(layer, ranks)
            if problem is None:
                tally.did(f"factorized {layer.op.name}")
            else:
                tally.decline(layer.op, problem)
        tally.record()

    # -- per layer -----------------------------------------------------------------------

    def _factorize(self, layer: WeightLayer, ranks: dict[int, int]) -> str | None:
        op = layer.op
        if isinstance(op, oc.GemmOp):
            if op.prop("trans_a"):
                return "gemm with trans_a"
            return self._svd_layer(layer, ranks) if self.method in _SVD else f"method={self.method}"
        if op.prop("group") != 1:
            return "grouped conv"
        kh, kw = layer.array.shape[2:]
        if (kh, kw) == (1, 1):
            return self._svd_layer(layer, ranks) if self.method in _SVD else f"method={self.method}"
        if self.method == "cp":
            return self._cp_layer(layer)
        return self._tucker_layer(layer) if self.method != "svd" else "method=svd"

    def _svd_rank(self, w: np.ndarray) -> int:
        n, k = w.shape
        if self.energy > 0:
            return energy_rank(np.linalg.svd(w.astype(np.float64), compute_uv=False), self.energy)
        return max(1, int(math.floor(self.ratio * n * k / (n + k))))

    def _svd_layer(self, layer: WeightLayer, ranks: dict[int, int]) -> str | None:
        op = layer.op
        w = as_rows(layer)  # (N, K)
        n, k = w.shape
        r = ranks.get(id(op)) or self._svd_rank(w)
        if r * (n + k) >= n * k:
            return f"rank {r} would not reduce MACs"
        us, vt = svd_factors(w, r)
        if isinstance(op, oc.GemmOp):
            v_c, u_c = _f32(vt), _f32(us)
            first = oc.GemmOp(op.a, v_c, None, trans_b=1, alpha=op.prop("alpha"))
            props = {**op.props_dict(), "trans_b": 1, "alpha": 1.0}
            second = oc.GemmOp(first, u_c, op.operand_named("c"), **props)
        else:
            v_c, u_c = _f32(vt.reshape(r, k, 1, 1)), _f32(us.reshape(n, r, 1, 1))
            first = oc.ConvOp(
                op.x,
                v_c,
                None,
                None,
                strides=op.prop("strides"),
                pads=op.prop("pads"),
                dilations=op.prop("dilations"),
            )
            second = oc.ConvOp(
                first,
                u_c,
                op.operand_named("bias"),
                op.operand_named("residual"),
                **{**op.props_dict(), "strides": (1, 1), "pads": (0, 0, 0, 0)},
            )
        return self._replace(layer, [v_c, u_c, first, second])

    def _tucker_layer(self, layer: WeightLayer) -> str | None:
        op = layer.op
        w = layer.array
        m, c, kh, kw = w.shape
        if self.energy > 0:
            s_out = left_singular(w.reshape(m, -1))[0]
            s_in = left_singular(w.transpose(1, 0, 2, 3).reshape(c, -1))[0]
            r_out, r_in = energy_rank(s_out, self.energy), energy_rank(s_in, self.energy)
        else:
            a, b, cc = c * m * kh * kw, c * c + m * m, -self.ratio * c * m * kh * kw
            rho = (-b + math.sqrt(b * b - 4 * a * cc)) / (2 * a)
            r_out, r_in = max(1, int(rho * m)), max(1, int(rho * c))
        u_out, core, u_in = tucker2(w, r_out, r_in)
        first_w = _f32(u_in.T.reshape(r_in, c, 1, 1))
        core_w = _f32(core)
        last_w = _f32(u_out.reshape(m, r_out, 1, 1))
        first = oc.ConvOp(op.x, first_w, None, None)
        mid = oc.ConvOp(
            first,
            core_w,
            None,
            None,
            strides=op.prop("strides"),
            pads=op.prop("pads"),
            dilations=op.prop("dilations"),
        )
        last = oc.ConvOp(
            mid,
            last_w,
            op.operand_named("bias"),
            op.operand_named("residual"),
            **{**op.props_dict(), "strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)},
        )
        return self._replace(layer, [first_w, core_w, last_w, first, mid, last])

    def _cp_layer(self, layer: WeightLayer) -> str | None:
        op = layer.op
        w = layer.array
        m, c, kh, kw = w.shape
        r = self.rank or max(1, int(self.ratio * m * c * kh * kw / (m + c + kh + kw)))
        if r * (c + kh + kw + m) >= w.size:
            return f"rank {r} would not reduce parameters"
        a, bf, hf, vf = cp_decompose(w, r, self.iters)
        (sh, sw), (dh, dw) = op.prop("strides"), op.prop("dilations")
        pt, pl, pb, pr = op.prop("pads")
        first_w = _f32(bf.T.reshape(r, c, 1, 1))
        h_w = _f32(hf.T.reshape(r, 1, kh, 1))
        v_w = _f32(vf.T.reshape(r, 1, 1, kw))
        last_w = _f32(a.reshape(m, r, 1, 1))
        first = oc.ConvOp(op.x, first_w, None, None)
        vert = oc.ConvOp(
            first, h_w, None, None, group=r, strides=(sh, 1), pads=(pt, 0, pb, 0), dilations=(dh, 1)
        )
        horiz = oc.ConvOp(
            vert, v_w, None, None, group=r, strides=(1, sw), pads=(0, pl, 0, pr), dilations=(1, dw)
        )
        last = oc.ConvOp(
            horiz,
            last_w,
            op.operand_named("bias"),
            op.operand_named("residual"),
            **{**op.props_dict(), "strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)},
        )
        return self._replace(layer, [first_w, h_w, v_w, last_w, first, vert, horiz, last])

    def _replace(self, layer: WeightLayer, new_ops: list[Operation]) -> str | None:
        op = layer.op
        new_macs = sum(count_macs(o) for o in new_ops)
        if new_macs >= count_macs(op) or tuple(shape_of(new_ops[-1].results[0])) != tuple(
            shape_of(op.results[0])
        ):
            for new in reversed(new_ops):  # never inserted: release their operand uses
                new.drop_all_references()
            return "the factorized form would not reduce MACs"
        rank = IntegerAttr(int(shape_of(new_ops[-1].operands[0])[1]), i64)
        for new in new_ops:
            if isinstance(new, oc.ConstantOp):
                continue
            for key, attr in op.attributes.items():
                new.attributes[key] = attr  # the node name: the report groups factors by it
            new.attributes[RANK_ATTR] = rank
        Rewriter.insert_op(new_ops, InsertPoint.before(op))
        Rewriter.replace_op(op, [], new_results=list(new_ops[-1].results))
        if not layer.const.results[0].uses:
            Rewriter.erase_op(layer.const)
        return None
