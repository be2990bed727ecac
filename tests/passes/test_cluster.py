"""Property tests of ``cluster``: <= 2^bits shared values, zeros kept, nearest centroid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, rand, seeds, text

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.ops_compute import ConvOp, GemmOp
from nnc.passes._weights import weight_layers
from nnc.passes.cluster import CODEBOOK_ATTR, ClusterPass


def _model(rng, n, k, zeros):
    b = GraphBuilder()
    x = b.add_input("x", (1, 2, 3, 3))
    wc = rand(rng, (4, 2, 3, 3))
    y = b.insert(ConvOp(x, b.constant(wc), None, None))
    from nnc.ir.ops_shape import ReshapeOp

    y = b.insert(ReshapeOp(y, shape=(1, 4)))
    wg = rand(rng, (n, 4)) * rng.uniform(0.1, 10)
    wg[rng.random(wg.shape) < zeros] = 0  # already pruned weights
    y = b.insert(GemmOp(y, b.constant(wg), None, trans_b=1))
    del k
    return b.finish([("y", y)]), [wc, wg]


@given(seed=seeds, n=st.integers(1, 40), bits=st.integers(1, 5), zeros=st.floats(0, 0.9))
def test_shared_values_zeros_and_nearest_centroid(seed, n, bits, zeros):
    rng = np.random.default_rng(seed)
    before, originals = _model(rng, n, 0, zeros)
    after = apply_pass(before, ClusterPass(bits=bits))
    for layer, old in zip(weight_layers(after), originals):
        new = layer.array
        assert np.array_equal(new == 0, old == 0)  # zeros stay, nothing else becomes 0
        book_attr = layer.const.attributes.get(CODEBOOK_ATTR)
        if book_attr is None:  # too few non-zeros to share
            assert np.count_nonzero(old) <= 2**bits and np.array_equal(new, old)
            continue
        book = book_attr.array.astype(np.float64)
        assert len(book) <= 2**bits
        assert set(np.unique(new[new != 0]).tolist()) <= set(book.astype(np.float32).tolist())
        nz = old != 0
        dist_to_own = np.abs(old[nz].astype(np.float64) - new[nz])
        dist_to_best = np.abs(old[nz].astype(np.float64)[:, None] - book[None, :]).min(axis=1)
        assert (dist_to_own <= dist_to_best + 1e-12).all()


def test_few_weights_are_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (1, 2))
    y = b.insert(GemmOp(x, b.constant(np.array([[1, 0], [0, 2]], np.float32)), None))
    module = b.finish([("y", y)])
    assert text(apply_pass(module, ClusterPass(bits=1))) == text(module)


@pytest.mark.parametrize("kwargs", [{"bits": 0}, {"bits": 9}, {"iters": 0}])
def test_bad_options_raise(kwargs):
    with pytest.raises(InvalidOptionError):
        ClusterPass(**kwargs)


@given(seed=seeds, n=st.integers(1, 40), bits=st.integers(2, 5), zeros=st.floats(0, 0.9))
def test_reserve_zero_fits_zero_and_centroids_in_bits(seed, n, bits, zeros):
    rng = np.random.default_rng(seed)
    before, originals = _model(rng, n, 0, zeros)
    after = apply_pass(before, ClusterPass(bits=bits, reserve_zero=True))
    for layer, old in zip(weight_layers(after), originals):
        assert np.array_equal(layer.array == 0, old == 0)
        assert len(np.unique(layer.array)) <= 2**bits
