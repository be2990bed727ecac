"""fold-constants: random all-constant subgraphs collapse to one constant, bitwise exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.nn_base import NNOp
from nnc.ir.ops_compute import ConstantOp, MatMulOp
from nnc.ir.ops_elementwise import AddOp, ExpOp, MulOp, SigmoidOp, SubOp, TanhOp
from nnc.ir.ops_shape import ReshapeOp, TransposeOp
from nnc.ir.types import shape_of
from nnc.passes.fold_constants import FoldConstantsPass
from nnc.passes.pipelines import run_pipeline

STEPS = ["transpose", "reshape", "add", "mul", "sub", "exp", "sigmoid", "tanh"]


def constant_chain(b: GraphBuilder, rng, steps: list[str]):
    """A (2, 3)-shaped value computed from constants only."""
    v = b.constant(rand(rng, (2, 3)))
    for kind in steps:
        shape = shape_of(v)
        if kind == "transpose":
            v = b.insert(TransposeOp(v, perm=(1, 0)))
        elif kind == "reshape":
            v = b.insert(ReshapeOp(v, shape=shape[::-1]))
        elif kind in ("add", "mul", "sub"):
            op = {"add": AddOp, "mul": MulOp, "sub": SubOp}[kind]
            v = b.insert(op(v, b.constant(rand(rng, shape[-1:]))))
        else:
            v = b.insert({"exp": ExpOp, "sigmoid": SigmoidOp, "tanh": TanhOp}[kind](v))
    if shape_of(v) != (2, 3):
        v = b.insert(TransposeOp(v, perm=(1, 0)))
    return v


@given(seed=seeds, steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=6))
def test_constant_subgraphs_fold_exactly(seed, steps):
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.add_input("x", (3, 2))
    k = constant_chain(b, rng, steps)
    y = b.insert(MatMulOp(x, k))
    before = b.finish([("y", b.insert(AddOp(y, b.constant(rand(rng, (3,))))))])

    after = apply_pass(before, FoldConstantsPass())

    assert count(after, NNOp) == 4  # two constants, matmul, add
    assert count(after, ConstantOp) == 2 < count(before, ConstantOp) + 1
    xin = rand(rng, (3, 2))
    with np.errstate(all="ignore"):  # exp chains may overflow: inf/nan must match too
        y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    np.testing.assert_array_equal(y0, y1)


def test_max_elements_option_limits_folded_size():
    rng = np.random.default_rng(2)
    b = GraphBuilder()
    x = b.add_input("x", (3, 2))
    module = b.finish([("y", b.insert(MatMulOp(x, constant_chain(b, rng, ["add", "exp"]))))])
    small = apply_pass(module, FoldConstantsPass(max_elements=5))
    assert text(small) == text(module)
    assert count(apply_pass(module, FoldConstantsPass(max_elements=6)), NNOp) == 2
    report = run_pipeline(module.clone(), "fold-constants{max-elements=5}")
    assert report.messages("fold-constants") == [
        "not applied (1x): result larger than max-elements=5"
    ]


def test_graph_without_constant_ops_is_left_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (2, 3))
    y = b.insert(AddOp(b.insert(ExpOp(x)), b.constant(np.ones(3, np.float32))))
    module = b.finish([("y", y)])
    assert text(apply_pass(module, FoldConstantsPass())) == text(module)
