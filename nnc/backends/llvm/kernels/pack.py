"""Compile-time weight packing for the direct (channel-vectorized) conv kernel.

``lower.py`` packs a constant conv weight once, with numpy, into the layout the
micro-kernel of ``conv_direct.py`` streams, and tells the kernel so through the
``w_layout`` kernel-spec argument:

* ``"oihw"``: the ONNX layout ``(M, C/group, KH, KW)`` (default; any conv kernel);
* ``"c16"``: ``(group, ceil(mg / 16), C/group, KH, KW, 16)`` with ``mg = M / group``:
  per group, output channels in blocks of ``CHANNEL_BLOCK`` = 16, innermost, zero padded
  to whole blocks. One reduction step ``(c, kh, kw)`` of a block is one contiguous run of
  16 floats (one AVX-512 vector, two AVX2 / four NEON vectors), and a block's whole
  panel (``C/group * KH * KW * 16`` floats) is contiguous.

The layout does not depend on the target (lowering is target independent); the kernel
picks its register tile from the target's vector width. This module imports numpy only.
"""

from __future__ import annotations

import numpy as np

CHANNEL_BLOCK = 16
LAYOUTS = ("oihw", "c16")


def packed_blocks(m: int, group: int) -> int:
    """Blocks of ``CHANNEL_BLOCK`` output channels per group."""
    return -(-(m // group) // CHANNEL_BLOCK)


def pack_conv_weights(w: np.ndarray, group: int) -> np.ndarray:
    """``w (M, C/group, KH, KW)`` -> the ``"c16"`` layout (float32, C-contiguous)."""
    m, cg, kh, kw = w.shape
    mg = m // group
    nb = packed_blocks(m, group)
    padded = np.zeros((group, nb * CHANNEL_BLOCK, cg, kh, kw), dtype=np.float32)
    padded[:, :mg] = np.asarray(w, dtype=np.float32).reshape(group, mg, cg, kh, kw)
    blocks = padded.reshape(group, nb, CHANNEL_BLOCK, cg, kh, kw)
    return np.ascontiguousarray(blocks.transpose(0, 1, 3, 4, 5, 2))


def choose_conv_layout(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], group: int, weight_is_constant: bool
) -> str:
    """The weight layout (= conv algorithm) for one conv: the per-layer cost rule.

    ``"c16"`` selects the direct channel-vectorized kernel (no scratch, no wasted
    columns, fused epilogue; costs an in-register transpose per tile, ~1/K of the work).
    ``"oihw"`` keeps the implicit-GEMM kernel, chosen when the weights are not constant
    (cannot be packed), for depthwise-like convs (few output channels per group would be
    mostly zero padding) and for tiny reductions (K < 16) on large images, where the
    transpose would dominate.
    """
    if not weight_is_constant or len(x_shape) != 4:
        return "oihw"
    m, cg, kh, kw = w_shape
    mg = m // group
    if mg < 8:
        return "oihw"
    k = cg * kh * kw
    if k < 16 and x_shape[2] * x_shape[3] >= 64:
        return "oihw"
    return "c16"
