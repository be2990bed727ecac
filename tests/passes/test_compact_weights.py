"""``compact-weights``: marks exactly the convs whose weight a compressed format stores
in under 0.9x its float32 bytes; the IR's values are unchanged (attributes only)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, rand, seeds

from nnc.backends.llvm.kernels.compact_pack import choose_format
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp
from nnc.passes.compact_weights import CompactWeightsPass


def _conv(w: np.ndarray):
    b = GraphBuilder()
    x = b.add_input("x", (1, w.shape[1], 6, 6))
    y = b.insert(ConvOp(x, b.constant(w), None, None, pads=(1, 1, 1, 1)))
    return b.finish([("y", y)])


@given(seed=seeds, zeros=st.sampled_from([0.0, 0.3, 0.6, 0.9]), values=st.sampled_from([0, 4, 16]))
def test_marks_paying_convs_and_keeps_values(seed, zeros, values):
    rng = np.random.default_rng(seed)
    w = rand(rng, (16, 8, 3, 3))
    if values:
        w = rand(rng, (values,))[rng.integers(0, values, w.shape)]
    w[rng.random(w.shape) < zeros] = 0.0
    before = _conv(w)

    after = apply_pass(before, CompactWeightsPass())

    (conv,) = [op for op in after.walk() if isinstance(op, ConvOp)]
    fmt = choose_format(w)
    assert ("nn.compact_weight" in conv.attributes) == (fmt is not None)
    if fmt is not None:
        assert conv.attributes["nn.compact_weight"].data == fmt
        assert conv.attributes["nn.conv_algo"].data == "direct"
    x = [rand(rng, (1, 8, 6, 6))]
    np.testing.assert_array_equal(interpret(before, x)[0], interpret(after, x)[0])


def test_dense_weights_are_left_alone():
    w = np.random.default_rng(0).standard_normal((16, 8, 3, 3)).astype(np.float32)
    (conv,) = [op for op in apply_pass(_conv(w), CompactWeightsPass()).walk()
               if isinstance(op, ConvOp)]  # fmt: skip
    assert "nn.compact_weight" not in conv.attributes
