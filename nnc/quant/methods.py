"""Range-selection methods: from samples of one activation tensor to a range (lo, hi).

* ``minmax``: the observed minimum and maximum.
* ``percentile``: the 0.01st and 99.99th percentiles (``PERCENTILE``).
* ``entropy``: TensorRT's KL-divergence calibration: a 2048-bin histogram of |x|, each
  candidate threshold (bins 128..2048) quantized to 128 levels, the threshold whose
  quantized distribution has the smallest KL divergence from the clipped reference.
* ``mse``: the clipping threshold (100 candidates, 1%..100% of max |x|) minimising the
  mean squared error of fake quantization with 255 levels.

Every method returns a range containing 0 and never wider than [min, max].
"""

from __future__ import annotations

import numpy as np

METHODS = ("minmax", "percentile", "entropy", "mse")
PERCENTILE = 99.99


def _finish(x: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    xmin, xmax = float(x.min()), float(x.max())
    lo, hi = max(float(lo), xmin), min(float(hi), xmax)
    return min(lo, 0.0), max(hi, 0.0)


def minmax(x: np.ndarray) -> tuple[float, float]:
    return _finish(x, float(x.min()), float(x.max()))


def percentile(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(x, [100 - PERCENTILE, PERCENTILE])
    return _finish(x, float(lo), float(hi))


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    q = np.where(q > 0, q, 1e-12)
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def entropy(x: np.ndarray, bins: int = 2048, levels: int = 128) -> tuple[float, float]:
    a = np.abs(x.astype(np.float64)).ravel()
    amax = float(a.max())
    if amax == 0:
        return 0.0, 0.0
    hist, edges = np.histogram(a, bins=bins, range=(0, amax))
    hist = hist.astype(np.float64)
    best, best_i = np.inf, bins
    for i in range(levels, bins + 1, 8):
        ref = hist[:i].copy()
        ref[i - 1] += hist[i:].sum()
        # quantize the first i bins into `levels` groups, spread back over non-empty bins
        sizes = np.full(levels, i // levels)
        sizes[: i % levels] += 1  # np.array_split's chunking
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        nonzero = hist[:i] > 0
        sums = np.add.reduceat(hist[:i], starts)
        counts = np.maximum(np.add.reduceat(nonzero.astype(np.float64), starts), 1)
        q = np.repeat(sums / counts, sizes) * nonzero
        if ref.sum() == 0 or q.sum() == 0:
            continue
        d = _kl(ref / ref.sum(), q / q.sum())
        if d < best:
            best, best_i = d, i
    t = float(edges[best_i])
    return _finish(x, -t, t)


def mse(x: np.ndarray, candidates: int = 100) -> tuple[float, float]:
    xf = x.astype(np.float64).ravel()
    xmin, xmax = min(float(xf.min()), 0.0), max(float(xf.max()), 0.0)
    if xmax == xmin:
        return xmin, xmax
    best, best_r = np.inf, (xmin, xmax)
    for f in np.linspace(0.01, 1.0, candidates):
        lo, hi = xmin * f, xmax * f
        scale = (hi - lo) / 255
        zp = np.rint(-lo / scale)
        fq = (np.clip(np.rint(xf / scale) + zp, 0, 255) - zp) * scale
        err = float(np.mean((fq - xf) ** 2))
        if err < best:
            best, best_r = err, (lo, hi)
    return _finish(x, *best_r)


def select_range(method: str, samples: np.ndarray) -> tuple[float, float]:
    """The range of one tensor from its samples by ``method`` (one of METHODS)."""
    return {"minmax": minmax, "percentile": percentile, "entropy": entropy, "mse": mse}[method](
        samples
    )
