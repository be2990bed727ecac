"""cse: duplicated subgraphs and equal constants merge; results are bitwise unchanged."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.nn_base import NNOp
from nnc.ir.ops_compute import ConstantOp
from nnc.ir.ops_elementwise import AddOp, ClipOp, MulOp, ReluOp
from nnc.passes.cse import CommonSubexpressionEliminationPass


def branch(b: GraphBuilder, x, weights: list[np.ndarray], clip_max: float):
    """x -> (+ w0) -> relu -> (* w1) -> ... -> clip; each weight in its own constant op."""
    v = x
    for i, w in enumerate(weights):
        v = b.insert(AddOp(v, b.constant(w)) if i % 2 == 0 else MulOp(v, b.constant(w)))
        v = b.insert(ReluOp(v))
    return b.insert(ClipOp(v, min=0.0, max=clip_max))


@given(seed=seeds, depth=st.integers(1, 4), copies=st.integers(2, 3))
def test_duplicate_branches_merge(seed, depth, copies):
    rng = np.random.default_rng(seed)
    weights = [rand(rng, (3,)) for _ in range(depth)]
    b = GraphBuilder()
    x = b.add_input("x", (2, 3))
    # copies of one branch, with weights copied into fresh arrays (equal bytes, new objects)
    outs = [branch(b, x, [w.copy() for w in weights], 4.0) for _ in range(copies)]
    before = b.finish([(f"y{i}", v) for i, v in enumerate(outs)])

    after = apply_pass(before, CommonSubexpressionEliminationPass())

    assert count(after, NNOp) == count(before, NNOp) // copies
    assert count(after, ConstantOp) == len({w.tobytes() for w in weights})
    xin = rand(rng, (2, 3))
    for y0, y1 in zip(interpret(before, [xin]), interpret(after, [xin]), strict=True):
        np.testing.assert_array_equal(y0, y1)


def test_different_weights_or_properties_do_not_merge():
    rng = np.random.default_rng(5)
    w = rand(rng, (3,))
    w2 = w.copy()
    w2[1] = np.nextafter(w2[1], np.float32(2))  # one ulp apart
    b = GraphBuilder()
    x = b.add_input("x", (2, 3))
    y1, y2, y3 = branch(b, x, [w], 4.0), branch(b, x, [w2], 4.0), branch(b, x, [w], 5.0)
    module = b.finish([("a", y1), ("b", y2), ("c", y3)])
    after = apply_pass(module, CommonSubexpressionEliminationPass())
    # only branch c's constant and add/relu duplicate branch a (its clip bound differs)
    assert count(after, NNOp) == count(module, NNOp) - 3


def test_unique_graph_is_left_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (2, 3))
    module = b.finish([("y", branch(b, x, [np.ones(3, np.float32), np.zeros(3, np.float32)], 1))])
    assert text(apply_pass(module, CommonSubexpressionEliminationPass())) == text(module)
