"""fold-qdq: dequantize -> (reshape|transpose)* -> quantize pairs; exact when the
parameters are equal, within one output step when they differ; per-channel unchanged."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, count, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_quant import DequantizeOp, QuantizeOp, RequantizeOp
from nnc.ir.ops_shape import ReshapeOp, TransposeOp
from nnc.passes.fold_qdq import FoldQDQPass


def _params(rng, dtype):
    scale = np.float32(rng.uniform(0.01, 1))
    zp = int(rng.integers(0, 256)) if dtype == "u8" else int(rng.integers(-128, 128))
    return {"scale": np.array(scale, np.float32), "zero_point": np.array(zp, np.int32)}


@given(
    seeds,
    st.sampled_from(["u8", "i8"]),
    st.sampled_from(["u8", "i8"]),
    st.booleans(),
    st.booleans(),
)
def test_pairs_fold(seed, din, dout, same, movers):
    rng = np.random.default_rng(seed)
    if same:
        dout = din
    p_in = _params(rng, din)
    p_out = p_in if same else _params(rng, dout)
    b = GraphBuilder()
    x = b.add_input("x", (2, 6), din)
    v = b.insert(DequantizeOp(x, **p_in))
    if movers:
        v = b.insert(TransposeOp(b.insert(ReshapeOp(v, shape=(3, 4))), perm=(1, 0)))
    q = b.insert(QuantizeOp(v, dtype=dout, **p_out))
    before = b.finish([("y", q)])
    after = apply_pass(before, FoldQDQPass())
    assert count(after, QuantizeOp, DequantizeOp) == 0
    assert count(after, RequantizeOp) == (0 if same else 1)
    lo, hi = (0, 256) if din == "u8" else (-128, 128)
    xin = rng.integers(lo, hi, (2, 6)).astype(np.uint8 if din == "u8" else np.int8)
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    assert y0.dtype == y1.dtype
    diff = np.abs(y0.astype(np.int64) - y1.astype(np.int64))
    assert diff.max(initial=0) <= (0 if same else 1)


def test_per_channel_pair_is_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (1, 2), "u8")
    d = b.insert(DequantizeOp(x, scale=np.ones(2, np.float32), zero_point=np.zeros(2, np.int32)))
    q = b.insert(QuantizeOp(d, scale=np.array(1, np.float32), zero_point=np.array(0, np.int32)))
    before = b.finish([("y", q)])
    assert text(apply_pass(before, FoldQDQPass())) == text(before)
