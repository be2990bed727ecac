"""nchwc-layout: conv chains run blocked, with transforms only at the chain borders."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pass_testing import apply_pass, count, rand, seeds

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_blocked import ConvBlockedOp, FromBlockedOp, MaxPoolBlockedOp, ToBlockedOp
from nnc.ir.ops_compute import AvgPoolOp, ConvOp, MaxPoolOp
from nnc.ir.ops_elementwise import AddOp, ReluOp, SigmoidOp
from nnc.passes.nchwc_layout import NCHWcLayoutPass

STEPS = ["conv3", "conv1", "conv_s2", "relu", "sigmoid", "add", "res_conv", "pool", "dw", "avg"]


def _chain(rng, c0: int, hw: int, steps: list[str], widths: list[int]):
    """A random chain over ``steps``; convs draw their output width from ``widths``."""
    b = GraphBuilder()
    cur = b.add_input("x", (1, c0, hw, hw))
    shape = [c0, hw]
    prev = None  # an earlier value with the current shape (for residual adds)
    ws = iter(widths)

    def conv(x, k, stride, res=None, m=None, group=1):
        m = m if m is not None else next(ws)
        w = b.constant(rand(rng, (m, shape[0] // group, k, k)))
        bias = b.constant(rand(rng, (m,)))
        pads = (k // 2,) * 4
        return b.insert(
            ConvOp(
                x, w, bias, res, strides=(stride, stride), pads=pads, activation="relu", group=group
            )  # fmt: skip
        )

    for step in steps:
        if step in ("conv3", "conv1", "conv_s2"):
            stride = 2 if step == "conv_s2" and shape[1] > 2 else 1
            new = conv(cur, 1 if step == "conv1" else 3, stride)
            prev, cur = (None, new)
            spec = new.type.get_shape()
            shape = [spec[1], spec[2]]
        elif step == "relu":
            prev, cur = cur, b.insert(ReluOp(cur))
        elif step == "sigmoid":
            prev, cur = cur, b.insert(SigmoidOp(cur))
        elif step == "add" and prev is not None:
            prev, cur = cur, b.insert(AddOp(cur, prev))
        elif step == "res_conv":
            new = conv(cur, 3, 1, res=cur, m=shape[0])
            prev, cur = cur, new
        elif step == "dw":
            prev, cur = cur, conv(cur, 3, 1, res=cur, m=shape[0], group=shape[0])
        elif step in ("pool", "avg") and shape[1] >= 2:
            kind = MaxPoolOp if step == "pool" else AvgPoolOp
            cur = b.insert(kind(cur, kernel=(2, 2), strides=(2, 2)))
            prev, shape = None, [shape[0], shape[1] // 2]
    return b.finish([("y", cur)])


@settings(max_examples=25, deadline=None)
@given(
    seed=seeds,
    c0=st.integers(1, 20),
    hw=st.integers(2, 7),
    steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=6),
    widths=st.lists(st.integers(8, 40), min_size=6, max_size=6),
)
def test_interpreter_same_numbers(seed, c0, hw, steps, widths):
    rng = np.random.default_rng(seed)
    before = _chain(rng, c0, hw, steps, widths)
    after = apply_pass(before, NCHWcLayoutPass())
    x = rand(rng, (1, c0, hw, hw))
    y0, y1 = interpret(before, [x])[0], interpret(after, [x])[0]
    np.testing.assert_array_equal(y0, y1)
    assert count(after, ConvOp) + count(after, ConvBlockedOp) == count(before, ConvOp)


def test_conv_relu_conv_has_one_transform_each_way():
    rng = np.random.default_rng(0)
    before = _chain(rng, 3, 6, ["conv3", "relu", "conv3", "res_conv"], [20, 24])
    after = apply_pass(before, NCHWcLayoutPass())
    assert count(after, ToBlockedOp) == 1 and count(after, FromBlockedOp) == 1
    assert count(after, ConvBlockedOp) == 3 and count(after, ConvOp) == 0
    x = rand(rng, (1, 3, 6, 6))
    np.testing.assert_array_equal(interpret(before, [x])[0], interpret(after, [x])[0])


def test_avg_pool_breaks_the_chain_max_pool_and_depthwise_do_not():
    rng = np.random.default_rng(1)
    before = _chain(rng, 8, 8, ["conv3", "pool", "dw", "avg", "conv3"], [17, 9])
    after = apply_pass(before, NCHWcLayoutPass(block=8))
    assert count(after, ToBlockedOp) == 2 and count(after, FromBlockedOp) == 2
    assert count(after, MaxPoolBlockedOp) == 1 and count(after, ConvBlockedOp) == 3
    x = rand(rng, (1, 8, 8, 8))
    np.testing.assert_array_equal(interpret(before, [x])[0], interpret(after, [x])[0])


def test_bad_block_is_rejected():
    with pytest.raises(InvalidOptionError, match="block"):
        NCHWcLayoutPass(block=5)
