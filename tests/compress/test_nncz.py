"""Huffman coding and the nncz container: exact round trips, smaller than dense."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nnc.compress import huffman, nncz


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 500), alphabet=st.integers(1, 256))
def test_huffman_round_trip(seed, n, alphabet):
    rng = np.random.default_rng(seed)
    symbols = np.minimum(rng.geometric(0.3, n) - 1, alphabet - 1)
    lengths, payload, count = huffman.encode(symbols, alphabet)
    assert np.array_equal(huffman.decode(lengths, payload, count), symbols)
    if n:  # Huffman is within 1 bit per symbol of the entropy
        p = np.bincount(symbols, minlength=alphabet) / n
        entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
        assert len(payload) * 8 <= n * (entropy + 1) + 8


@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 3000),
    sparsity=st.floats(0, 1),
    levels=st.sampled_from([0, 4, 16, 300]),
)
def test_array_round_trip_and_gaps(seed, size, sparsity, levels):
    import io
    import zipfile

    rng = np.random.default_rng(seed)
    arr = rng.standard_normal(size).astype(np.float32)
    if levels:
        arr = rng.choice(rng.standard_normal(levels).astype(np.float32), size)
    arr[rng.random(size) < sparsity] = 0
    meta, blobs = nncz.encode_array("k", arr)
    assert sum(len(b) for b in blobs.values()) <= arr.nbytes  # never worse than raw
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in blobs.items():
            zf.writestr(name, data)
    with zipfile.ZipFile(buf) as zf:
        assert np.array_equal(nncz.decode_array(zf, "k", meta), arr)
