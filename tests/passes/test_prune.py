"""Property tests of ``prune``: exact sparsity, survivors unchanged, pruned are smallest."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, rand, seeds, text

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp, GemmOp
from nnc.ir.ops_elementwise import ReluOp
from nnc.passes._weights import masks, weight_layers
from nnc.passes.prune import PrunePass


def _model(rng: np.random.Generator, n: int, k: int, m: int, c: int, trans_b: int):
    """x (1, c, 4, 4) -> conv3x3 (m) -> relu -> flatten -> gemm (n) ... weights uniform."""
    b = GraphBuilder()
    x = b.add_input("x", (1, c, 4, 4))
    w_conv = rand(rng, (m, c, 3, 3))
    y = b.insert(ConvOp(x, b.constant(w_conv), None, None, pads=(1, 1, 1, 1)))
    y = b.insert(ReluOp(y))
    from nnc.ir.ops_shape import ReshapeOp

    y = b.insert(ReshapeOp(y, shape=(1, m * 16)))
    w_fc = rand(rng, (n, m * 16) if trans_b else (m * 16, n))
    y = b.insert(GemmOp(y, b.constant(w_fc), b.constant(rand(rng, (n,))), trans_b=trans_b))
    del k
    return b.finish([("y", y)]), [w_conv, w_fc]


def _weights(module) -> list[np.ndarray]:
    return [layer.array for layer in weight_layers(module)]


shapes = st.tuples(
    st.integers(1, 6), st.integers(1, 1), st.integers(1, 4), st.integers(1, 3), st.integers(0, 1)
)


@given(
    seed=seeds,
    dims=shapes,
    sparsity=st.floats(0.0, 1.0),
    scope=st.sampled_from(["local", "global"]),
)
def test_unstructured_invariant(seed, dims, sparsity, scope):
    rng = np.random.default_rng(seed)
    before, originals = _model(rng, *dims)
    after = apply_pass(before, PrunePass(sparsity=sparsity, scope=scope))
    news = _weights(after)
    units = (
        list(zip(originals, news))
        if scope == "local"
        else [
            (
                np.concatenate([o.ravel() for o in originals]),
                np.concatenate([n.ravel() for n in news]),
            )
        ]
    )
    for old, new in units:
        pruned = (new == 0) & (old != 0)
        assert pruned.sum() == round(sparsity * old.size)  # exact sparsity
        assert np.array_equal(new[~pruned], old[~pruned])  # survivors bit-identical
        if pruned.any() and (~pruned).any():
            assert np.abs(old[pruned]).max() <= np.abs(old[~pruned]).min()  # smallest go
    # The fine-tuning hook: the recorded masks say exactly what was kept.
    for mask, new in zip(
        masks(after).values(), [n for n, o in zip(news, originals) if (n != o).any()]
    ):
        assert np.array_equal(mask, new != 0)


@given(seed=seeds, dims=shapes, pattern=st.sampled_from(["1:2", "2:4", "1:4", "3:4"]))
def test_n_m_invariant(seed, dims, pattern):
    n_keep, m = map(int, pattern.split(":"))
    rng = np.random.default_rng(seed)
    before, originals = _model(rng, *dims)
    after = apply_pass(before, PrunePass(pattern=pattern))
    for layer, old in zip(weight_layers(after), originals):
        new = layer.array
        if new.ndim == 4:  # groups along input channels: layout (M, KH, KW, C)
            old, new = old.transpose(0, 2, 3, 1), new.transpose(0, 2, 3, 1)
        elif not layer.op.prop("trans_b"):
            old, new = old.T, new.T
        old2, new2 = old.reshape(old.shape[0], -1), new.reshape(new.shape[0], -1)
        full = old2.shape[1] // m * m
        g_old = old2[:, :full].reshape(old2.shape[0], -1, m)
        g_new = new2[:, :full].reshape(old2.shape[0], -1, m)
        assert ((g_new == 0).sum(axis=2) == m - n_keep).all()
        kept = np.where(g_new != 0, np.abs(g_old), np.inf).min(axis=2)
        gone = np.where(g_new == 0, np.abs(g_old), -np.inf).max(axis=2)
        assert (gone <= kept).all()
        assert np.array_equal(new2[:, full:], old2[:, full:])  # partial group stays dense
        assert np.array_equal(new2[new2 != 0], old2[new2 != 0])


@given(
    seed=seeds,
    dims=shapes,
    sparsity=st.floats(0.0, 1.0),
    block=st.sampled_from(["1x4", "2x2", "4x1"]),
)
def test_block_invariant(seed, dims, sparsity, block):
    r, c = map(int, block.split("x"))
    rng = np.random.default_rng(seed)
    before, _ = _model(rng, *dims)
    after = apply_pass(before, PrunePass(sparsity=sparsity, pattern=block))
    for layer_before, layer in zip(weight_layers(before), weight_layers(after)):
        from nnc.passes._weights import as_rows
        from nnc.passes.prune import block_scores

        old, new = as_rows(layer_before), as_rows(layer)
        zero_blocks = block_scores(new, r, c) == 0
        assert zero_blocks.sum() == round(sparsity * zero_blocks.size)
        assert np.array_equal(new[new != 0], old[new != 0])
        scores = block_scores(old, r, c)
        if zero_blocks.any() and (~zero_blocks).any():
            assert scores[zero_blocks].max() <= scores[~zero_blocks].min()


@given(seed=seeds, dims=shapes, sparsity=st.floats(0.0, 1.0))
def test_output_change_is_bounded_by_the_removed_weights(seed, dims, sparsity):
    rng = np.random.default_rng(seed)
    n, _, m, c, trans_b = dims
    b = GraphBuilder()
    x = b.add_input("x", (2, m * 4))
    w = rand(rng, (n, m * 4) if trans_b else (m * 4, n))
    y = b.insert(GemmOp(x, b.constant(w), None, trans_b=trans_b))
    before = b.finish([("y", y)])
    after = apply_pass(before, PrunePass(sparsity=sparsity))
    w2 = weight_layers(after)[0].array
    xin = rand(rng, (2, m * 4))
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    wt, wt2 = (w.T, w2.T) if trans_b else (w, w2)
    bound = np.abs(xin) @ np.abs(wt - wt2) + 4 * m * U * (np.abs(xin) @ np.abs(wt) + 1e-30)
    assert (np.abs(y0.astype(np.float64) - y1) <= bound + 1e-6).all()


def test_inapplicable_input_is_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (1, 4))
    module = b.finish([("y", b.insert(ReluOp(x)))])
    assert text(apply_pass(module, PrunePass(sparsity=0.9))) == text(module)


@pytest.mark.parametrize(
    "kwargs", [{"sparsity": 1.5}, {"scope": "layer"}, {"pattern": "3:2"}, {"pattern": "4by4"}]
)
def test_bad_options_raise(kwargs):
    with pytest.raises(InvalidOptionError):
        PrunePass(**kwargs)
