"""canonicalize: random reshape/transpose/neutral-arithmetic chains simplify exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_elementwise import AddOp, DivOp, MulOp, SubOp
from nnc.ir.ops_shape import ReshapeOp, TransposeOp
from nnc.ir.types import shape_of
from nnc.passes.canonicalize import CanonicalizePass
from nnc.passes.report import PassReport, collecting

STEPS = [
    "reshape",
    "reshape_same",
    "transpose",
    "transpose_id",
    "add0",
    "zero_add",
    "sub0",
    "mul1",
    "one_mul",
    "div1",
]


def _neutral_shape(rng, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A random shape that broadcasts into ``shape`` without growing it."""
    tail = shape[len(shape) - int(rng.integers(0, len(shape) + 1)) :]
    return tuple(d if rng.random() < 0.5 else 1 for d in tail)


def _step(b: GraphBuilder, rng, kind: str, v):
    shape = shape_of(v)
    if kind == "reshape":
        dims = list(rng.permutation(shape))
        if len(dims) > 1 and rng.random() < 0.5:
            dims[:2] = [dims[0] * dims[1]]
        if rng.random() < 0.3:
            dims[int(rng.integers(len(dims)))] = -1
        return b.insert(ReshapeOp(v, shape=[int(d) for d in dims]))
    if kind == "reshape_same":
        return b.insert(ReshapeOp(v, shape=shape))
    if kind in ("transpose", "transpose_id"):
        perm = rng.permutation(len(shape)) if kind == "transpose" else range(len(shape))
        return b.insert(TransposeOp(v, perm=[int(p) for p in perm]))
    const_shape = _neutral_shape(rng, shape)
    zeros, ones = np.zeros(const_shape, np.float32), np.ones(const_shape, np.float32)
    make = {
        "add0": lambda: AddOp(v, b.constant(zeros)),
        "zero_add": lambda: AddOp(b.constant(zeros), v),
        "sub0": lambda: SubOp(v, b.constant(zeros)),
        "mul1": lambda: MulOp(v, b.constant(ones)),
        "one_mul": lambda: MulOp(b.constant(ones), v),
        "div1": lambda: DivOp(v, b.constant(ones)),
    }
    return b.insert(make[kind]())


def violations(module) -> int:
    """How many ops still match a canonicalization (0 after the pass)."""
    n = 0
    for op in module.walk():
        if isinstance(op, ReshapeOp | TransposeOp):
            same = type(op.x.owner) is type(op)
            ident = op.x.type == op.results[0].type and (
                isinstance(op, ReshapeOp) or list(op.prop("perm")) == sorted(op.prop("perm"))
            )
            n += same or ident
    return n


@given(
    rank=st.integers(1, 4),
    seed=seeds,
    steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=6),
)
def test_chains_simplify_exactly(rank, seed, steps):
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 4, rank))
    b = GraphBuilder()
    v = b.add_input("x", shape)
    for kind in steps:
        v = _step(b, rng, kind, v)
    before = b.finish([("y", v)])

    after = apply_pass(before, CanonicalizePass())

    xin = rand(rng, shape)
    np.testing.assert_array_equal(interpret(before, [xin])[0], interpret(after, [xin])[0])
    assert violations(after) == 0
    assert count(after, AddOp, SubOp, MulOp, DivOp) == 0  # every constant here is neutral
    if set(steps) - {"transpose", "reshape"} or violations(before):
        assert count(after, ReshapeOp, TransposeOp, AddOp, MulOp, SubOp, DivOp) < count(
            before, ReshapeOp, TransposeOp, AddOp, MulOp, SubOp, DivOp
        )


def test_inapplicable_inputs_are_left_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (2, 3))
    a = b.insert(AddOp(x, b.constant(np.array([0, 1, 0], np.float32))))  # not all zero
    z = b.insert(AddOp(x, b.constant(np.zeros((4, 2, 3), np.float32))))  # broadcasts x up
    s = b.insert(SubOp(b.constant(np.zeros(3, np.float32)), x))  # 0 - x is -x
    d = b.insert(DivOp(b.constant(np.ones(3, np.float32)), x))  # 1 / x
    t = b.insert(TransposeOp(x, perm=(1, 0)))
    r = b.insert(ReshapeOp(t, shape=(6,)))  # not a chain
    module = b.finish([("a", a), ("z", z), ("s", s), ("d", d), ("r", r)])
    report = PassReport()
    with collecting(report):
        after = apply_pass(module, CanonicalizePass())
    assert text(after) == text(module)
    assert report.messages("canonicalize") == ["nothing to do"]
