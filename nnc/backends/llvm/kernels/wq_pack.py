"""Compile-time packing of weight-only (``nn.wq_gemm`` / ``nn.wq_conv``) weights for the
dequant-in-GEMM kernels (``wq_gemm.py``, ``wq_conv.py``).

``lower.py`` replaces the stored ``(N, Kw)`` weight operand by one byte buffer, the
``"wq16"`` layout, built here with numpy (the weights stay compressed: same bits per
weight, plus the scales as f32). Output channels (rows ``n``) are cut into blocks of
``BLOCK`` = 16 (zero padded: code 0, scale 0); per block, reduction row ``k`` holds the
16 channels' codes contiguously, so decoding one ``k`` of a block is one vector load:

* ``i8``: ``[NB][K][16]`` int8 codes;
* ``i4``/``u4``: ``[NB][K][8]`` bytes, byte ``j`` = channel ``j`` (low nibble) and channel
  ``j + 8`` (high nibble);
* ``f16``/``bf16``: ``[NB][K][16]`` 16-bit values (no scales);

then (integer storages) the scales ``[NB][G][16]`` f32 and, when a zero point is stored,
the zero points ``[NB][G][16]`` as f32 (exact small integers); each section starts at a
multiple of 64 bytes. ``G = ceil(K / group_size)`` (1 per-channel). Decoding is exactly
the contract of ``nnc/ir/ops_quant.py``: ``W = (f32(q) - f32(zp)) * f32(scale)``
(``f32(q) - f32(zp)`` equals ``f32(q - zp)``: both are small integers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnc.ir import ops_quant as oq

#: Output channels per packed block.
BLOCK = 16
#: Name of the layout (the ``w_layout`` kernel argument).
LAYOUT = "wq16"


def _align64(n: int) -> int:
    return (n + 63) // 64 * 64


@dataclass(frozen=True)
class WQLayout:
    """Sizes and byte offsets of a ``wq16`` buffer (see the module docstring)."""

    storage: str
    n: int
    k: int
    group_size: int
    has_zp: bool

    @property
    def blocks(self) -> int:
        """Blocks of ``BLOCK`` output channels."""
        return -(-self.n // BLOCK)

    @property
    def groups(self) -> int:
        """Scale groups per row (1 per-channel)."""
        return math.ceil(self.k / self.group_size) if self.group_size else 1

    @property
    def row_bytes(self) -> int:
        """Bytes of one reduction row of one block."""
        return {"i8": 16, "i4": 8, "u4": 8, "f16": 32, "bf16": 32}[self.storage]

    @property
    def has_scale(self) -> bool:
        return self.storage in ("i8", "i4", "u4")

    @property
    def scale_offset(self) -> int:
        return _align64(self.blocks * self.k * self.row_bytes)

    @property
    def zp_offset(self) -> int:
        return self.scale_offset + _align64(4 * self.blocks * self.groups * BLOCK)

    @property
    def nbytes(self) -> int:
        if not self.has_scale:
            return self.scale_offset
        return self.zp_offset + (self.zp_offset - self.scale_offset) * self.has_zp


def layout_of(storage: str, w_shape, group_size: int, zero_point) -> WQLayout:
    """The layout for an op's properties (``zero_point`` any array; empty = symmetric)."""
    n, k = oq.wq_rows(tuple(w_shape))
    zp = np.asarray(zero_point)
    has_zp = storage in ("i8", "i4", "u4") and zp.size > 0 and bool(zp.any())
    return WQLayout(storage, n, k, int(group_size) if storage in ("i8", "i4", "u4") else 0, has_zp)


def _blocked(a: np.ndarray, nb: int) -> np.ndarray:
    """``(N, X)`` -> ``(NB, X, 16)`` (rows zero padded to whole blocks)."""
    n, x = a.shape
    out = np.zeros((nb * BLOCK, x), a.dtype)
    out[:n] = a
    return np.ascontiguousarray(out.reshape(nb, BLOCK, x).transpose(0, 2, 1))


def pack_wq(w: np.ndarray, lay: WQLayout, scale, zero_point) -> np.ndarray:
    """The ``wq16`` bytes (u8) of a stored weight ``w`` (the op's operand)."""
    nb, k = lay.blocks, lay.k
    out = np.zeros(lay.nbytes, np.uint8)
    w = np.asarray(w)
    if lay.storage in ("f16", "bf16"):
        codes = _blocked(w.reshape(lay.n, k).view(np.uint16), nb)
        out[: codes.nbytes] = codes.reshape(-1).view(np.uint8)
        return out
    if lay.storage == "i8":
        codes = _blocked(w.reshape(lay.n, k).astype(np.int8), nb)
        out[: codes.nbytes] = codes.reshape(-1).view(np.uint8)
    else:
        q = oq.unpack_int4(w, k, signed=lay.storage == "i4")
        nib = _blocked(q.astype(np.int64) & 0xF, nb)  # (NB, K, 16)
        packed = (nib[..., :8] | (nib[..., 8:] << 4)).astype(np.uint8)
        out[: packed.nbytes] = packed.reshape(-1)
    s = np.asarray(scale).astype(np.float32).reshape(lay.n, lay.groups)
    sb = _blocked(s, nb).reshape(-1)
    out[lay.scale_offset : lay.scale_offset + sb.nbytes] = sb.view(np.uint8)
    if lay.has_zp:
        z = np.asarray(zero_point).astype(np.float32).reshape(lay.n, lay.groups)
        zb = _blocked(z, nb).reshape(-1)
        out[lay.zp_offset : lay.zp_offset + zb.nbytes] = zb.view(np.uint8)
    return out


def pack_wq_op(op) -> np.ndarray:
    """The ``wq16`` buffer of a weight-only op whose weight is an ``nn.constant``."""
    from nnc.ir.ops_compute import ConstantOp

    p = op.props_dict()
    w = op.operand_named("w").owner
    if not isinstance(w, ConstantOp):
        raise ValueError(f"op '{op.name}': the wq16 layout needs a constant weight")
    lay = layout_of(p["storage"], p["w_shape"], p["group_size"], p["zero_point"].array)
    return pack_wq(w.prop("value").array, lay, p["scale"].array, p["zero_point"].array)
