"""CP (CANDECOMP/PARAFAC) decomposition of conv kernels for ``low-rank{method=cp}``.

Not a pass. ``cp_decompose(w, rank)`` factors a (M, C, KH, KW) kernel as

    W[m, c, h, w] ~= sum_r lam[r] * A[m, r] * B[c, r] * H[h, r] * V[w, r]

(Lebedev et al. 2015) by alternating least squares in float64: deterministic HOSVD
initialisation (the leading left singular vectors of each mode's unfolding; modes
shorter than the rank are completed by a fixed-seed Gaussian), ``iters`` sweeps that
solve each factor exactly given the others (``T_(n) KhatriRao(others) pinv(Hadamard of
the Gram matrices)``), columns normalised into ``lam`` after every sweep, early stop when
the relative fit stops improving. Every ALS step solves its least-squares problem
exactly, so the fit never gets worse from one sweep to the next.

When ``rank`` reaches the trivial bound (the product of every dimension but the
largest), the exact decomposition is built directly instead: one rank-1 term per entry
of the three smaller modes (unit vectors there, the matching fibre of ``W`` in the
largest mode), so ``cp_reconstruct`` returns ``W`` up to rounding.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

try:  # tiny matrices: BLAS threads only add overhead (and stall on a loaded machine)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None

Factors = list[np.ndarray]  # [A (M, R), B (C, R), H (KH, R), V (KW, R)], lam folded into A


def _khatri_rao(mats: list[np.ndarray]) -> np.ndarray:
    """Column-wise Kronecker product (rows in C order of the operands)."""
    out = mats[0]
    for m in mats[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, m.shape[1])
    return out


def cp_reconstruct(factors: Factors) -> np.ndarray:
    """The (M, C, KH, KW) tensor of CP factors (float64)."""
    a, b, h, v = factors
    return (a @ _khatri_rao([b, h, v]).T).reshape(a.shape[0], b.shape[0], h.shape[0], v.shape[0])


def rank_bound(shape: tuple[int, ...]) -> int:
    """A rank at which an exact CP decomposition exists: product of all dims but the largest."""
    return math.prod(shape) // max(shape)


def _exact(w: np.ndarray, rank: int) -> Factors:
    """Exact CP with ``rank_bound`` terms (zero-padded up to ``rank``)."""
    shape = w.shape
    big = int(np.argmax(shape))
    others = [d for d in range(4) if d != big]
    terms = rank_bound(shape)
    factors = [np.zeros((n, rank)) for n in shape]
    moved = np.moveaxis(w, big, -1).reshape(terms, shape[big])  # (others..., big)
    for t, idx in enumerate(np.ndindex(*(shape[d] for d in others))):
        for d, i in zip(others, idx, strict=True):
            factors[d][i, t] = 1.0
        factors[big][:, t] = moved[t]
    return factors


def _unfold(t: np.ndarray, mode: int) -> np.ndarray:
    return np.moveaxis(t, mode, 0).reshape(t.shape[mode], -1)


def _init(w: np.ndarray, rank: int) -> Factors:
    rng = np.random.default_rng(0)
    out = []
    for mode, n in enumerate(w.shape):
        u = np.linalg.svd(_unfold(w, mode), full_matrices=False)[0][:, :rank]
        if u.shape[1] < rank:
            u = np.concatenate([u, rng.standard_normal((n, rank - u.shape[1])) / math.sqrt(n)], 1)
        out.append(u)
    return out


def cp_decompose(w: np.ndarray, rank: int, iters: int = 60, tol: float = 1e-7) -> Factors:
    """CP factors [A*lam, B, H, V] of the 4-way kernel ``w`` (see module docstring)."""
    w64 = np.asarray(w, np.float64)
    if rank >= rank_bound(w64.shape):
        return _exact(w64, rank)
    limit = threadpool_limits(1) if threadpool_limits else contextlib.nullcontext()
    with limit:
        return _als(w64, rank, iters, tol)


def _als(w64: np.ndarray, rank: int, iters: int, tol: float) -> Factors:
    factors = _init(w64, rank)
    unfolded = [_unfold(w64, mode) for mode in range(4)]  # rows: mode, cols: others in order
    norm2 = float((w64**2).sum()) or 1.0
    prev = math.inf
    for _ in range(iters):
        for mode in range(4):
            others = [f for i, f in enumerate(factors) if i != mode]
            gram = np.ones((rank, rank))
            for f in others:
                gram *= f.T @ f
            mttkrp = unfolded[mode] @ _khatri_rao(others)
            factors[mode] = mttkrp @ np.linalg.pinv(gram, hermitian=True)
        # ||W - X||^2 = ||W||^2 - 2 <W, X> + ||X||^2 without forming X: <W, X> from the
        # last MTTKRP (mode 3, before rescaling), ||X||^2 from the Gram matrices.
        inner = float((factors[3] * mttkrp).sum())
        gram_all = gram * (factors[3].T @ factors[3])
        err = math.sqrt(max(norm2 - 2 * inner + float(gram_all.sum()), 0.0) / norm2)
        lam = np.ones(rank)
        for mode in (1, 2, 3):  # keep B, H, V unit-norm; the scale lives in A
            n = np.linalg.norm(factors[mode], axis=0)
            n[n == 0] = 1.0
            factors[mode] /= n
            lam *= n
        factors[0] = factors[0] * lam
        if prev - err < tol:
            break
        prev = err
    return factors
