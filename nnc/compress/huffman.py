"""Canonical Huffman coding of small-alphabet integer streams (numpy in, bytes out).

``encode(symbols) -> (code_lengths, payload, n)`` and ``decode(code_lengths, payload, n)``
round-trip exactly. ``code_lengths[s]`` is the bit length of symbol ``s`` (0 = absent);
codes are canonical (assigned in (length, symbol) order), so the table is just the
lengths. Bits are packed MSB first. Decoding walks the canonical code tables per bit
length, fast enough for models of a few hundred thousand weights.
"""

from __future__ import annotations

import heapq

import numpy as np


def code_lengths(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    """Huffman code length of every symbol in ``range(alphabet)`` (uint8, 0 if unused)."""
    counts = np.bincount(symbols.reshape(-1), minlength=alphabet)
    used = [int(s) for s in np.flatnonzero(counts)]
    lengths = np.zeros(alphabet, np.uint8)
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths
    heap = [(int(counts[s]), i, [s]) for i, s in enumerate(used)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def _canonical(lengths: np.ndarray) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length) of the canonical code with these lengths."""
    order = sorted((int(n), s) for s, n in enumerate(lengths) if n > 0)
    codes, code, prev = {}, 0, 0
    for n, s in order:
        code <<= n - prev
        codes[s] = (code, n)
        code += 1
        prev = n
    return codes


def encode(symbols: np.ndarray, alphabet: int) -> tuple[np.ndarray, bytes, int]:
    """(code lengths, packed bits, number of symbols) of ``symbols`` (ints < alphabet)."""
    flat = np.asarray(symbols).reshape(-1).astype(np.int64)
    if flat.size == 0:
        return np.zeros(alphabet, np.uint8), b"", 0
    lengths = code_lengths(flat, alphabet)
    codes = _canonical(lengths)
    max_len = int(lengths.max())
    # Bit matrix: one row per symbol, its code right-aligned in max_len bits.
    code_of = np.zeros(alphabet, np.int64)
    len_of = lengths.astype(np.int64)
    for s, (c, _) in codes.items():
        code_of[s] = c
    sym_codes, sym_lens = code_of[flat], len_of[flat]
    shifts = np.arange(max_len - 1, -1, -1)
    bits = ((sym_codes[:, None] >> shifts[None, :]) & 1).astype(np.uint8)
    keep = shifts[None, :] < sym_lens[:, None]
    return lengths, np.packbits(bits[keep]).tobytes(), int(flat.size)


def decode(lengths: np.ndarray, payload: bytes, n: int) -> np.ndarray:
    """Inverse of ``encode``: the ``n`` symbols (int64)."""
    out = np.zeros(n, np.int64)
    if n == 0:
        return out
    codes = _canonical(np.asarray(lengths))
    table = {(length, c): s for s, (c, length) in codes.items()}
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))
    code, length, i = 0, 0, 0
    for bit in bits.tolist():
        code, length = (code << 1) | bit, length + 1
        sym = table.get((length, code))
        if sym is not None:
            out[i] = sym
            i += 1
            if i == n:
                break
            code, length = 0, 0
    if i != n:
        raise ValueError(f"huffman payload ends after {i} of {n} symbols")
    return out
