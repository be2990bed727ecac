"""dce: dead branches of random graphs disappear; live results are bitwise unchanged."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.nn_base import NNOp
from nnc.ir.ops_compute import ConstantOp
from nnc.ir.ops_elementwise import AddOp, ReluOp, SigmoidOp, TanhOp
from nnc.passes.dce import DeadCodeEliminationPass

UNARY = [ReluOp, SigmoidOp, TanhOp]


def random_graph(rng, live_len: int, dead_len: int):
    """A live chain from the input plus ``dead_len`` ops hanging off it, unused."""
    b = GraphBuilder()
    v = b.add_input("x", (2, 3))
    live = [v]
    for _ in range(live_len):
        op = UNARY[rng.integers(len(UNARY))]
        v = b.insert(op(v) if rng.random() < 0.6 else AddOp(v, live[rng.integers(len(live))]))
        live.append(v)
    dead = [live[rng.integers(len(live))]]
    for _ in range(dead_len):
        src = dead[rng.integers(len(dead))]
        k = b.constant(rand(rng, (3,)))
        dead.append(b.insert(AddOp(src, k) if rng.random() < 0.5 else ReluOp(src)))
    return b.finish([("y", v)])


@given(seed=seeds, live_len=st.integers(1, 5), dead_len=st.integers(1, 5))
def test_dead_ops_are_erased(seed, live_len, dead_len):
    rng = np.random.default_rng(seed)
    before = random_graph(rng, live_len, dead_len)
    after = apply_pass(before, DeadCodeEliminationPass())
    # every dead op goes, and with them the constants (only dead ops use constants here)
    assert count(after, NNOp) == count(before, NNOp) - dead_len - count(before, ConstantOp)
    assert count(after, ConstantOp) == 0
    xin = rand(rng, (2, 3))
    np.testing.assert_array_equal(interpret(before, [xin])[0], interpret(after, [xin])[0])


def test_live_graph_is_left_unchanged():
    module = random_graph(np.random.default_rng(3), 4, 0)
    assert text(apply_pass(module, DeadCodeEliminationPass())) == text(module)
