"""Shared by the convolution-algorithm passes (``winograd-conv``, ``fft-conv``,
``select-conv-algo``): applicability checks, the rewrites, multiplication counts and the
cost model. Not a pass (no registry entry).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnc.ir.ops_compute import ConvOp
from nnc.ir.ops_conv_algos import (
    FFTConvOp,
    WinogradConvOp,
    fft_bins,
    fft_weights,
    winograd_matrices,
    winograd_tiles,
    winograd_weights,
)
from nnc.ir.types import DYNAMIC, shape_of
from nnc.passes._common import constant_array, f32_constant, is_f32

#: Discardable attribute on ``nn.conv`` naming the kernel lowering should use
#: ("direct": the default implicit-GEMM kernel, "im2col": explicit im2col + GEMM).
ALGO_ATTR = "nn.conv_algo"

#: Every algorithm name ``select-conv-algo{algo=...}`` / ``--conv-algo`` accepts.
ALGOS = ("auto", "autotune", "direct", "im2col", "winograd2", "winograd4", "fft")


@dataclass(frozen=True)
class ConvShape:
    """Static sizes of a conv: x (n, c, h, w), w (mo, c, kh, kw), output (oh, ow)."""

    n: int
    c: int
    h: int
    w: int
    mo: int
    kh: int
    kw: int
    oh: int
    ow: int
    pads: tuple[int, int, int, int]

    @staticmethod
    def of(conv: ConvOp) -> ConvShape:
        n, c, h, w = shape_of(conv.x)
        mo, _, kh, kw = shape_of(conv.w)
        _, _, oh, ow = shape_of(conv.results[0])
        return ConvShape(n, c, h, w, mo, kh, kw, oh, ow, tuple(conv.prop("pads")))

    @property
    def direct_mults(self) -> int:
        """Multiplications of the direct convolution."""
        return self.n * self.mo * self.c * self.oh * self.ow * self.kh * self.kw

    @property
    def fft_shape(self) -> tuple[int, int]:
        pt, pl, pb, pr = self.pads
        return self.h + pt + pb, self.w + pl + pr


def common_problem(conv: ConvOp) -> str | None:
    """Why ``conv`` cannot use a fast algorithm at all (None if it can)."""
    if not is_f32(conv.x, conv.w, conv.results[0]):
        return "not f32"
    shapes = [shape_of(conv.x), shape_of(conv.w), shape_of(conv.results[0])]
    if any(DYNAMIC in s for s in shapes):
        return "dynamic shape"
    if constant_array(conv.w) is None:
        return "weight is not a constant"
    if conv.prop("group") != 1:
        return "grouped conv"
    if tuple(conv.prop("strides")) != (1, 1):
        return "stride != 1"
    if tuple(conv.prop("dilations")) != (1, 1):
        return "dilation != 1"
    return None


def winograd_problem(conv: ConvOp) -> str | None:
    """Why ``conv`` cannot become an ``nn.winograd_conv`` (None if it can)."""
    problem = common_problem(conv)
    if problem is None and tuple(shape_of(conv.w)[2:]) != (3, 3):
        problem = "kernel is not 3x3"
    return problem


def _epilogue_operands(conv: ConvOp):
    return conv.operand_named("bias"), conv.operand_named("residual")


def _epilogue_props(conv: ConvOp) -> dict:
    return {k: conv.prop(k) for k in ("activation", "act_alpha", "act_beta")}


def build_winograd(conv: ConvOp, tile: int) -> list:
    """[U constant, nn.winograd_conv] replacing ``conv`` (caller checked applicability)."""
    u = f32_constant(winograd_weights(constant_array(conv.w), tile))
    new = WinogradConvOp(
        conv.x, u, *_epilogue_operands(conv), tile=tile, pads=conv.prop("pads"),
        **_epilogue_props(conv),
    )  # fmt: skip
    return [u, new]


def build_fft(conv: ConvOp) -> list:
    """[W_f constant, nn.fft_conv] replacing ``conv`` (caller checked applicability)."""
    s = ConvShape.of(conv)
    wf = f32_constant(fft_weights(constant_array(conv.w), s.fft_shape))
    new = FFTConvOp(
        conv.x, wf, *_epilogue_operands(conv), kernel=(s.kh, s.kw), pads=conv.prop("pads"),
        fft_shape=s.fft_shape, **_epilogue_props(conv),
    )  # fmt: skip
    return [wf, new]


# -- multiplication counts -------------------------------------------------------------


def _non_unit(mat: np.ndarray) -> int:
    """Entries that cost a multiplication (not 0 or ±1)."""
    return int(np.sum((mat != 0) & (np.abs(mat) != 1)))


@dataclass(frozen=True)
class MultCount:
    """Multiplications of one conv by some algorithm: the channel-mixing stage (what
    the classical Winograd/FFT arithmetic-savings figures count) and the transforms."""

    elementwise: int
    transforms: int

    @property
    def total(self) -> int:
        return self.elementwise + self.transforms


def winograd_mults(s: ConvShape, tile: int) -> MultCount:
    """F(tile, 3): T*T per tile and channel pair, plus constant multiplies in B and A."""
    t = tile + 2
    th, tw = winograd_tiles(s.oh, s.ow, tile)
    p = s.n * th * tw
    at, _, bt = winograd_matrices(tile)
    in_tf = 2 * t * _non_unit(bt) * s.c * p
    out_tf = (t + tile) * _non_unit(at) * s.mo * p
    return MultCount(s.mo * s.c * p * t * t, in_tf + out_tf)


def fft_mults(s: ConvShape) -> MultCount:
    """Complex products (4 real mults) per frequency and channel pair, plus the DFTs
    done as real matrix products (row rDFT, column DFT, and their inverses)."""
    hp, wp = s.fft_shape
    wf = fft_bins(wp)
    pointwise = 4 * s.n * s.mo * s.c * hp * wf
    forward = s.n * s.c * (2 * hp * wp * wf + 4 * wf * hp * hp)
    inverse = s.n * s.mo * (4 * wf * hp * s.oh + 2 * s.oh * wf * s.ow)
    return MultCount(pointwise, forward + inverse)


# -- cost model ------------------------------------------------------------------------

#: Cost of one unit of work in each stage, in GEMM micro-kernel FMAs (fitted to kernel
#: timings of ResNet-18's 3x3 layers and a few 5x5/7x7 layers on an AVX-512 host, see
#: select_conv_algo.py): Winograd transform additions/multiplications are scalar
#: straight-line code; FFT multiplications are vectorized loops, not register blocked
#: (x4; fitted on 7x7..15x15 kernels, noisy); weight bytes are
#: streamed once per image and cost more once they no longer fit in the caches
#: (Winograd's weights are T*T/9 times larger, FFT's Hp*Wp*2/(KH*KW) times); scratch
#: bytes are written once and read back once.
TRANSFORM_COST = 2.75
FFT_STAGE_COST = 4.0
WEIGHT_BYTE_COST = (2.0, 6.0)  # per byte, up to / beyond CACHE_BYTES
CACHE_BYTES = 8 << 20
SCRATCH_BYTE_COST = 0.25


def _weight_cost(nbytes: int) -> float:
    return nbytes * WEIGHT_BYTE_COST[nbytes > CACHE_BYTES]


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def estimate_cost(s: ConvShape, algo: str, nr: int = 32) -> float | None:
    """Estimated cost of ``algo`` on a conv of shape ``s`` (None: not applicable).

    ``nr`` is the GEMM micro-tile width in columns (32 on AVX-512): the Winograd and
    im2col GEMMs run over whole micro tiles.
    """
    taps = s.kh * s.kw
    weights = _weight_cost(4 * s.mo * s.c * taps)
    if algo == "direct":
        return s.n * s.mo * s.c * taps * s.oh * s.ow + weights
    if algo == "im2col":
        cols = _round_up(s.oh * s.ow, nr)
        traffic = SCRATCH_BYTE_COST * 8 * s.c * taps * cols
        return s.n * (s.mo * s.c * taps * cols + traffic) + weights
    if algo in ("winograd2", "winograd4"):
        if (s.kh, s.kw) != (3, 3):
            return None
        tile = int(algo[-1])
        t = tile + 2
        th, tw = winograd_tiles(s.oh, s.ow, tile)
        pp = _round_up(th * tw, nr)
        gemm = t * t * s.mo * s.c * pp
        adds = 2 * t * t * t * (s.c + s.mo) * th * tw  # the additions of both transforms
        transforms = TRANSFORM_COST * (winograd_mults(s, tile).transforms + s.n * adds)
        traffic = SCRATCH_BYTE_COST * 8 * t * t * (s.c + s.mo) * pp
        u_bytes = _weight_cost(4 * t * t * s.mo * s.c)
        return s.n * (gemm + traffic) + transforms + u_bytes
    if algo == "fft":
        hp, wp = s.fft_shape
        wf_bytes = _weight_cost(4 * 2 * s.mo * s.c * hp * fft_bins(wp))
        return FFT_STAGE_COST * fft_mults(s).total + wf_bytes
    raise ValueError(f"unknown conv algorithm {algo!r}")
