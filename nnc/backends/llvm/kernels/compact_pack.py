"""Compressed storage of pruned / clustered float32 conv weights (``compact_conv.py``).

The weight is first put in the ``c16`` layout of the direct kernel (``pack.py``:
``[NB][K][16]`` float32, ``K = C*KH*KW``, output channels zero padded to blocks of 16),
then that flat stream of ``N = NB*K*16`` floats is encoded in one of these formats
(every section starts at a multiple of 64 bytes):

* ``sparse``: block offsets ``u32[NB]`` (index of the block's first nonzero), the
  bitmask ``u8[N/8]`` (bit ``e & 7`` of byte ``e >> 3``: 1 = stored, i.e. the float's
  bits are not all zero), then the stored values ``f32[nnz]`` in order;
* ``codebook4`` / ``codebook8``: the codebook ``f32[16]`` / ``f32[256]``, then one
  index per element (4-bit: two per byte, element ``e`` in the low nibble when ``e`` is
  even) -- when the stream has at most 16 / 256 distinct float bit patterns;
* ``sparse_codebook4`` / ``sparse_codebook8``: codebook, block offsets, bitmask, then
  indices of the stored (nonzero) elements only.

Decoding is exact (bit-identical floats): ``decode(encode(w)) == pack_conv_weights(w)``.
``choose_format`` picks the smallest format, or None unless it is below ``SAVING`` times
the dense float32 bytes.
"""

from __future__ import annotations

import numpy as np

from nnc.backends.llvm.kernels.pack import pack_conv_weights

BLOCK = 16
FORMATS = ("sparse", "codebook4", "codebook8", "sparse_codebook4", "sparse_codebook8")
#: A format is used only below this fraction of the dense float32 bytes.
SAVING = 0.9


def _a64(n: int) -> int:
    return (n + 63) // 64 * 64


def sections(fmt: str, nb: int, k: int, nnz: int = 0) -> dict[str, int]:
    """Byte offset of each section of ``fmt`` (plus ``"end"``, the total with ``nnz``)."""
    n = nb * k * BLOCK
    off, pos = {}, 0
    bits = 8 if fmt.endswith("8") else 4
    if "codebook" in fmt:
        off["codebook"], pos = pos, _a64(pos + 4 * (1 << bits))
    if fmt.startswith("sparse"):
        off["offsets"], pos = pos, _a64(pos + 4 * nb)
        off["mask"], pos = pos, _a64(pos + n // 8)
    off["values"] = pos
    count = nnz if fmt.startswith("sparse") else n
    vbytes = 4 * count if fmt == "sparse" else (count if bits == 8 else (count + 1) // 2)
    off["end"] = pos + vbytes
    return off


def _stream(w: np.ndarray) -> np.ndarray:
    """The c16 stream of a ``(M, C, KH, KW)`` weight as uint32 bit patterns."""
    return pack_conv_weights(np.asarray(w, np.float32), 1).reshape(-1).view(np.uint32)


def format_sizes(w: np.ndarray) -> dict[str, int]:
    """Bytes of every format that can hold ``w`` (dense float32 under ``"dense"``)."""
    u = _stream(w)
    m, c, kh, kw = w.shape
    nb, k = -(-m // BLOCK), c * kh * kw
    nz = u[u != 0]
    out = {"dense": 4 * w.size, "sparse": sections("sparse", nb, k, nz.size)["end"]}
    n_all, n_nz = np.unique(u).size, np.unique(nz).size
    for bits in (4, 8):
        if n_all <= 1 << bits:
            out[f"codebook{bits}"] = sections(f"codebook{bits}", nb, k)["end"]
        if n_nz <= 1 << bits:
            fmt = f"sparse_codebook{bits}"
            out[fmt] = sections(fmt, nb, k, nz.size)["end"]
    return out


def choose_format(w: np.ndarray) -> str | None:
    """The smallest format for ``w``, or None when none is below ``SAVING`` x dense."""
    sizes = format_sizes(w)
    dense = sizes.pop("dense")
    best = min(sizes, key=lambda f: (sizes[f], f))
    return best if sizes[best] < SAVING * dense else None


def encode(w: np.ndarray, fmt: str) -> np.ndarray:
    """The ``fmt`` bytes (u8) of a ``(M, C, KH, KW)`` float32 weight (module docstring);
    ValueError if ``fmt`` cannot hold it."""
    if fmt not in FORMATS:
        raise ValueError(f"compact weights: unknown format {fmt!r}")
    u = _stream(w)
    m, c, kh, kw = w.shape
    nb, k = -(-m // BLOCK), c * kh * kw
    sparse = fmt.startswith("sparse")
    keep = u != 0
    vals = u[keep] if sparse else u
    off = sections(fmt, nb, k, int(keep.sum()))
    out = np.zeros(off["end"], np.uint8)
    if sparse:
        per_block = keep.reshape(nb, -1).sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(per_block)[:-1]]).astype(np.uint32)
        out[off["offsets"] : off["offsets"] + 4 * nb] = starts.view(np.uint8)
        mask = np.packbits(keep, bitorder="little")
        out[off["mask"] : off["mask"] + mask.size] = mask
    if fmt == "sparse":
        out[off["values"] :] = vals.astype(np.uint32).view(np.uint8)
        return out
    bits = 8 if fmt.endswith("8") else 4
    book, idx = np.unique(vals, return_inverse=True)
    if book.size > 1 << bits:
        raise ValueError(f"compact weights: {book.size} distinct values do not fit {fmt}")
    table = np.zeros(1 << bits, np.uint32)
    table[: book.size] = book
    out[off["codebook"] : off["codebook"] + table.nbytes] = table.view(np.uint8)
    idx = idx.reshape(-1).astype(np.uint8)
    if bits == 4:
        idx = np.concatenate([idx, np.zeros(idx.size % 2, np.uint8)])
        idx = idx[0::2] | (idx[1::2] << 4)
    out[off["values"] : off["values"] + idx.size] = idx
    return out


def decode(buf: np.ndarray, fmt: str, w_shape) -> np.ndarray:
    """Reference decoder: the c16 float32 array (``pack_conv_weights`` shape)."""
    m, c, kh, kw = w_shape
    nb, k = -(-m // BLOCK), c * kh * kw
    n = nb * k * BLOCK
    buf = np.asarray(buf, np.uint8)
    sparse = fmt.startswith("sparse")
    if sparse:
        off0 = sections(fmt, nb, k)
        keep = np.unpackbits(buf[off0["mask"] : off0["mask"] + n // 8], bitorder="little")
        keep = keep.astype(bool)
        count = int(keep.sum())
    else:
        keep, count = None, n
    off = sections(fmt, nb, k, count)
    raw = buf[off["values"] : off["end"]]
    if fmt == "sparse":
        vals = raw.view(np.uint32)
    else:
        bits = 8 if fmt.endswith("8") else 4
        table = buf[off["codebook"] : off["codebook"] + 4 * (1 << bits)].view(np.uint32)
        if bits == 4:
            idx = np.stack([raw & 15, raw >> 4], axis=1).reshape(-1)[:count]
        else:
            idx = raw
        vals = table[idx]
    u = np.zeros(n, np.uint32)
    if sparse:
        u[keep] = vals
    else:
        u[:] = vals
    return u.view(np.float32).reshape(1, nb, c, kh, kw, BLOCK)
