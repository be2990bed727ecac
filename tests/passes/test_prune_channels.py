"""Property tests of ``prune-channels``: the pruned model equals the original with the
removed channels zeroed (so every consumer was sliced consistently), group sizes shrink
by round(ratio * C), inapplicable models are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, count, rand, seeds, text

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import BatchNormOp, ConvOp, GemmOp, GlobalAvgPoolOp
from nnc.ir.ops_elementwise import AddOp, ReluOp
from nnc.ir.ops_shape import ConcatOp, ReshapeOp
from nnc.ir.types import shape_of
from nnc.passes.prune_channels import PruneChannelsPass


def _build(w: dict[str, np.ndarray], c: int, m: int, fused: bool, concat: bool):
    """x -> conv a (m) -> bn -> relu -> conv b (m) -(+ a, residual)-> relu
    [-> concat with conv d (m)] -> depthwise conv -> global pool -> flatten -> gemm (3)."""
    b = GraphBuilder()
    x = b.add_input("x", (1, c, 5, 5))
    a = b.insert(ConvOp(x, b.constant(w["a"]), b.constant(w["a_b"]), None, pads=(1, 1, 1, 1)))
    bn = [b.constant(w[k]) for k in ("s", "t", "mu", "var")]
    h = b.insert(ReluOp(b.insert(BatchNormOp(a, *bn))))
    if fused:
        y = b.insert(ConvOp(h, b.constant(w["b"]), None, a, activation="relu"))
    else:
        y = b.insert(
            ReluOp(b.insert(AddOp(b.insert(ConvOp(h, b.constant(w["b"]), None, None)), a)))
        )
    if concat:
        d = b.insert(ConvOp(x, b.constant(w["d"]), None, None))
        y = b.insert(ConcatOp(y, d, axis=1))
    ch = shape_of(y)[1]
    y = b.insert(ConvOp(y, b.constant(w["dw"][:ch]), None, None, group=ch, pads=(1, 1, 1, 1)))
    y = b.insert(ReshapeOp(b.insert(GlobalAvgPoolOp(y)), shape=(1, ch)))
    y = b.insert(GemmOp(y, b.constant(w["fc"][:, :ch]), b.constant(w["fc_b"]), trans_b=1))
    return b.finish([("y", y)])


def _weights(rng, c: int, m: int) -> dict[str, np.ndarray]:
    return {
        "a": rand(rng, (m, c, 3, 3)),
        "a_b": rand(rng, (m,)),
        "s": rand(rng, (m,), 0.5, 1.5),
        "t": rand(rng, (m,)),
        "mu": rand(rng, (m,)),
        "var": rand(rng, (m,), 0.5, 1.5),
        "b": rand(rng, (m, m, 1, 1)),
        "d": rand(rng, (m, c, 1, 1)),
        "dw": rand(rng, (2 * m, 1, 3, 3)),
        "fc": rand(rng, (3, 2 * m)),
        "fc_b": rand(rng, (3,)),
    }


def _kept(after) -> list[np.ndarray]:
    out = []
    for op in after.walk():
        attr = op.attributes.get("nn.kept_channels")
        if attr is not None:
            out.append(np.array(attr.get_values()))
    return out


@given(
    seed=seeds,
    c=st.integers(1, 3),
    m=st.integers(2, 6),
    ratio=st.floats(0.0, 0.9),
    fused=st.booleans(),
    concat=st.booleans(),
    norm=st.sampled_from(["l1", "l2"]),
)
def test_pruned_model_equals_original_with_removed_channels_zeroed(
    seed, c, m, ratio, fused, concat, norm
):
    rng = np.random.default_rng(seed)
    w = _weights(rng, c, m)
    before = _build(w, c, m, fused, concat)
    after = apply_pass(before, PruneChannelsPass(ratio=ratio, norm=norm))
    n_remove = min(round(ratio * m), m - 1)
    kept = _kept(after)
    # One add group (conv a and conv b keep the same channels); conv d its own group.
    assert len(kept) == (2 + concat if n_remove else 0)
    for k in kept:
        assert len(k) == m - n_remove
    if not n_remove:
        assert text(after) == text(before)
        return
    assert np.array_equal(kept[0], kept[1])  # the residual group is consistent
    # Reference: the original model with the removed channels' producers zeroed.
    z = {k: v.copy() for k, v in w.items()}
    gone = np.setdiff1d(np.arange(m), kept[0])
    z["a"][gone], z["a_b"][gone], z["b"][gone] = 0, 0, 0
    z["t"][gone] = 0
    z["mu"][gone] = 0  # bn(0) = (0 - 0) * s + 0 = 0 on removed channels
    if concat:
        z["d"][np.setdiff1d(np.arange(m), kept[2])] = 0
    reference = _build(z, c, m, fused, concat)
    xin = rand(rng, (1, c, 5, 5))
    y_ref, y_after = interpret(reference, [xin])[0], interpret(after, [xin])[0]
    np.testing.assert_allclose(y_after, y_ref, rtol=1e-5, atol=1e-5)
    assert count(after, ConvOp) == count(before, ConvOp)


def _score_order(w_a: np.ndarray, w_b: np.ndarray, norm: str) -> np.ndarray:
    ord_ = 1 if norm == "l1" else 2
    return np.linalg.norm(w_a.reshape(len(w_a), -1), ord_, axis=1) + np.linalg.norm(
        w_b.reshape(len(w_b), -1), ord_, axis=1
    )


@given(seed=seeds, m=st.integers(2, 6), ratio=st.floats(0.1, 0.9))
def test_the_lowest_norm_channels_go(seed, m, ratio):
    rng = np.random.default_rng(seed)
    w = _weights(rng, 2, m)
    after = apply_pass(_build(w, 2, m, True, False), PruneChannelsPass(ratio=ratio))
    kept = _kept(after)
    if not kept:
        return
    score = _score_order(w["a"], w["b"], "l1")
    gone = np.setdiff1d(np.arange(m), kept[0])
    assert score[gone].max() <= score[kept[0]].min()


def test_output_channels_stay_fixed():
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.add_input("x", (1, 2, 4, 4))
    y = b.insert(ConvOp(x, b.constant(rand(rng, (4, 2, 3, 3))), None, None))
    module = b.finish([("y", y)])
    assert text(apply_pass(module, PruneChannelsPass(ratio=0.5))) == text(module)


@pytest.mark.parametrize("kwargs", [{"ratio": 1.0}, {"ratio": -0.1}, {"norm": "linf"}])
def test_bad_options_raise(kwargs):
    with pytest.raises(InvalidOptionError):
        PruneChannelsPass(**kwargs)
