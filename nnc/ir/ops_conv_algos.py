"""Convolution algorithms as ops: Winograd F(m x m, 3 x 3) and FFT convolution.

Both ops are what ``nn.conv`` (groups 1, dilation 1, stride 1) becomes after the
``winograd-conv`` / ``fft-conv`` passes. Their weight operand is the *transformed* kernel,
computed once at compile time in float64 and rounded once to float32; the original
weights are gone from the module. They carry the same fused epilogue as ``nn.conv``:
``act(conv(x, w) + bias + residual)`` with optional ``bias`` (M,) and ``residual``
(output-shaped) operands and the ``activation``/``act_alpha``/``act_beta`` properties.

This module also holds the transform matrices and the float64 numpy reference of each
algorithm (``winograd_reference``, ``fft_reference``), used by the interpreter (so the
oracle runs the real algorithm on the stored transformed weights, not a plain conv over
weights that no longer exist), by the passes (weight transforms) and by the kernels
(the same matrices, as constants).

Winograd (Lavin & Gray 2015), per output tile of m x m pixels, T = m + 2::

    Y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A        (. = elementwise, T x T)

* F(2x2, 3x3): the exact Lavin-Gray matrices (points 0, 1, -1, inf): 16 instead of 36
  multiplications per tile and input channel (2.25x fewer).
* F(4x4, 3x3): points 0, 1, -1, 1/2, -2, inf: the best conditioned of the 0/±1/±2/±1/2
  family we measured (max rel. error 3.9e-6 vs 1.3e-5 for Lavin's 0, ±1, ±2 over 64
  random channels in float32); A and B entries are dyadic (exact in float32), G holds
  the 1/3 and 1/15 factors and is only used at compile time. 36 instead of 144
  multiplications per tile and channel (4x fewer).

FFT convolution: the padded input plane (Hp x Wp) and the kernel zero-padded to the same
size are real-DFT'd (``rfft2``); the stored weight is ``conj(rfft2(w))`` as (re, im)
planes, so the circular cross-correlation ``irfft2(sum_c X_c * W_mc)`` equals the
convolution on its first (Hp-KH+1) x (Wp-KW+1) outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec, nn_op
from nnc.ir.ops_compute import EPILOGUE_PROPS
from nnc.ir.types import DYNAMIC

# -- Winograd matrices ---------------------------------------------------------------

_F2_AT = [[1, 1, 1, 0], [0, 1, -1, -1]]
_F2_G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
_F2_BT = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]

_F4_AT = [
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 1 / 2, -2, 0],
    [0, 1, 1, 1 / 4, 4, 0],
    [0, 1, -1, 1 / 8, -8, 1],
]
_F4_G = [
    [1, 0, 0],
    [1 / 3, 1 / 3, 1 / 3],
    [-1 / 3, 1 / 3, -1 / 3],
    [-16 / 15, -8 / 15, -4 / 15],
    [1 / 15, -2 / 15, 4 / 15],
    [0, 0, 1],
]
_F4_BT = [
    [1, -3 / 2, -2, 3 / 2, 1, 0],
    [0, -1, 1 / 2, 5 / 2, 1, 0],
    [0, 1, -5 / 2, 1 / 2, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 1 / 2, -1, -1 / 2, 1, 0],
    [0, 1, -3 / 2, -2, 3 / 2, 1],
]

WINOGRAD_TILES = (2, 4)


def winograd_matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T (m x T), G (T x 3), B^T (T x T)) in float64 for F(m x m, 3 x 3), m in 2, 4."""
    if m == 2:
        mats = (_F2_AT, _F2_G, _F2_BT)
    elif m == 4:
        mats = (_F4_AT, _F4_G, _F4_BT)
    else:
        raise ValueError(f"Winograd output tile must be one of {WINOGRAD_TILES}, got {m}")
    return tuple(np.array(a, dtype=np.float64) for a in mats)  # type: ignore[return-value]


def winograd_weights(w: np.ndarray, m: int) -> np.ndarray:
    """``U[xi*T + nu, k, c] = (G w[k, c] G^T)[xi, nu]`` in float64, shape (T*T, M, C)."""
    _, g, _ = winograd_matrices(m)
    u = np.einsum("ik,mckl,jl->ijmc", g, w.astype(np.float64), g)
    t = m + 2
    return u.reshape(t * t, w.shape[0], w.shape[1])


def winograd_tiles(oh: int, ow: int, m: int) -> tuple[int, int]:
    """Tile rows and columns covering an oh x ow output with m x m tiles."""
    return -(-oh // m), -(-ow // m)


def winograd_reference(x: np.ndarray, u: np.ndarray, m: int, pads) -> np.ndarray:
    """The Winograd algorithm in float64 on transformed weights ``u`` (no epilogue)."""
    at, _, bt = winograd_matrices(m)
    t = m + 2
    n, c, h, w = x.shape
    mo = u.shape[1]
    pt, pl, pb, pr = pads
    oh, ow = h + pt + pb - 2, w + pl + pr - 2
    th, tw = winograd_tiles(oh, ow, m)
    xp = np.zeros((n, c, th * m + 2, tw * m + 2))
    rows, cols = min(h, th * m + 2 - pt), min(w, tw * m + 2 - pl)
    xp[:, :, pt : pt + rows, pl : pl + cols] = x[:, :, :rows, :cols]
    # d[n, c, ty, tx, i, j] = xp[n, c, ty*m + i, tx*m + j]
    s = xp.strides
    d = np.lib.stride_tricks.as_strided(
        xp, (n, c, th, tw, t, t), (s[0], s[1], m * s[2], m * s[3], s[2], s[3])
    )
    v = np.einsum("ai,nctuij,bj->nabctu", bt, d, bt).reshape(n, t * t, c, th * tw)
    mm = np.einsum("xkc,nxcp->nxkp", u.astype(np.float64), v).reshape(n, t, t, mo, th, tw)
    y = np.einsum("ia,nabktu,jb->nktiuj", at, mm, at).reshape(n, mo, th * m, tw * m)
    return y[:, :, :oh, :ow]


# -- FFT -----------------------------------------------------------------------------


def fft_bins(wp: int) -> int:
    """Stored frequencies along the width of a real DFT of length ``wp``."""
    return wp // 2 + 1


def fft_weights(w: np.ndarray, fft_shape: tuple[int, int]) -> np.ndarray:
    """``conj(rfft2(w zero-padded to fft_shape))`` as (M, C, 2, Hp*(Wp//2+1)) float64."""
    hp, wp = fft_shape
    wf = np.conj(np.fft.rfft2(w.astype(np.float64), s=(hp, wp)))
    mo, c = w.shape[:2]
    return np.stack([wf.real, wf.imag], axis=2).reshape(mo, c, 2, hp * fft_bins(wp))


def fft_reference(x: np.ndarray, wf: np.ndarray, kernel, pads, fft_shape) -> np.ndarray:
    """FFT convolution in float64 on transformed weights ``wf`` (no epilogue)."""
    hp, wp = fft_shape
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    xf = np.fft.rfft2(xp, s=(hp, wp))
    mo, c = wf.shape[:2]
    wc = wf.astype(np.float64).reshape(mo, c, 2, hp, fft_bins(wp))
    wc = wc[:, :, 0] + 1j * wc[:, :, 1]
    yf = np.einsum("nchw,mchw->nmhw", xf, wc)
    y = np.fft.irfft2(yf, s=(hp, wp))
    return y[:, :, : hp - kernel[0] + 1, : wp - kernel[1] + 1]


# -- ops -----------------------------------------------------------------------------


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def _check_epilogue(ins: list[TensorSpec], out: TensorSpec) -> None:
    m = out.shape[1]
    for extra in ins[2:]:
        _require(extra.shape in ((m,), out.shape), f"conv epilogue operand shape {extra.shape}")


@nn_op(
    "nn.winograd_conv",
    operands=("x", "u"),
    optional=("bias", "residual"),
    props={"tile": ("int", 2), "pads": ("ints", (0, 0, 0, 0)), **EPILOGUE_PROPS},
)
class WinogradConvOp(NNOp):
    """3x3 stride-1 convolution by Winograd F(tile x tile, 3 x 3), NCHW -> NMHW.

    ``u`` (T*T, M, C), T = tile + 2, is ``G w G^T`` per (output, input) channel, the
    T x T positions flattened row-major. ``pads`` = (top, left, bottom, right).
    """

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, u = ins[0], ins[1]
        _require(p["tile"] in WINOGRAD_TILES, f"winograd tile must be 2 or 4, got {p['tile']}")
        t = p["tile"] + 2
        _require(x.rank == 4 and u.rank == 3, f"winograd_conv: bad ranks {x.shape}, {u.shape}")
        _require(u.shape[0] == t * t, f"winograd_conv: u has {u.shape[0]} positions, want {t * t}")
        _require(x.shape[1] in (u.shape[2], DYNAMIC), f"input channels {x.shape[1]} != {u.shape}")
        _require(len(p["pads"]) == 4 and min(p["pads"]) >= 0, "winograd_conv expects 4 pads >= 0")
        pt, pl, pb, pr = p["pads"]
        n, _, h, w = x.shape
        _require(
            DYNAMIC in (h, w) or (h + pt + pb >= 3 and w + pl + pr >= 3),
            "winograd_conv: input smaller than the 3x3 kernel",
        )
        oh = DYNAMIC if h == DYNAMIC else h + pt + pb - 2
        ow = DYNAMIC if w == DYNAMIC else w + pl + pr - 2
        out = TensorSpec((n, u.shape[1], oh, ow), x.dtype)
        _check_epilogue(ins, out)
        return [out]


@nn_op(
    "nn.fft_conv",
    operands=("x", "wf"),
    optional=("bias", "residual"),
    props={
        "kernel": ("ints", None),
        "pads": ("ints", (0, 0, 0, 0)),
        "fft_shape": ("ints", None),
        **EPILOGUE_PROPS,
    },
)
class FFTConvOp(NNOp):
    """Stride-1 convolution by FFT over the whole padded plane, NCHW -> NMHW.

    ``wf`` (M, C, 2, Hp*(Wp//2+1)) is ``conj(rfft2(w))`` (re, im planes) of the
    ``kernel``-sized weights zero-padded to ``fft_shape`` = (Hp, Wp) = the padded input.
    """

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        x, wf = ins[0], ins[1]
        _require(x.rank == 4 and wf.rank == 4, f"fft_conv: bad ranks {x.shape}, {wf.shape}")
        _require(len(p["pads"]) == 4 and len(p["kernel"]) == 2, "fft_conv: 4 pads, 2 kernel dims")
        _require(len(p["fft_shape"]) == 2, "fft_conv: fft_shape has 2 dims")
        (kh, kw), (hp, wp) = p["kernel"], p["fft_shape"]
        pt, pl, pb, pr = p["pads"]
        n, c, h, w = x.shape
        _require(h in (hp - pt - pb, DYNAMIC), f"fft_conv: fft height {hp} != padded input")
        _require(w in (wp - pl - pr, DYNAMIC), f"fft_conv: fft width {wp} != padded input")
        _require(hp >= kh >= 1 and wp >= kw >= 1, "fft_conv: kernel larger than the plane")
        _require(
            wf.shape[2:] == (2, hp * fft_bins(wp)) and c in (wf.shape[1], DYNAMIC),
            f"fft_conv: weight shape {wf.shape} does not match x {x.shape}, fft {hp}x{wp}",
        )
        out = TensorSpec((n, wf.shape[0], hp - kh + 1, wp - kw + 1), x.dtype)
        _check_epilogue(ins, out)
        return [out]
