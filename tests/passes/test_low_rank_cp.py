"""``low-rank{method=cp}``: CP-ALS fit properties (error shrinks with rank, exact at the
trivial rank bound), the 4-conv rewrite equals a conv with the reconstructed kernel
(strides, asymmetric pads, dilations), compiled == interpreter, skips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from pass_testing import apply_pass, count, rand, seeds, text

import nnc
from nnc.ir import GraphBuilder
from nnc.ir.interpret import conv2d, interpret
from nnc.ir.ops_compute import ConvOp
from nnc.passes._cp import cp_decompose, cp_reconstruct, rank_bound
from nnc.passes._weights import weight_layers
from nnc.passes.low_rank import LowRankPass
from nnc.report import layer_infos

dims = st.integers(2, 5)
ks = st.integers(1, 3)


def _rel_err(w: np.ndarray, rank: int) -> float:
    approx = cp_reconstruct(cp_decompose(w, rank, iters=30))
    return float(np.linalg.norm(approx - w) / np.linalg.norm(w))


@given(seed=seeds, m=dims, c=dims, kh=ks, kw=ks, data=st.data())
def test_cp_error_shrinks_with_rank_and_vanishes_at_the_bound(seed, m, c, kh, kw, data):
    w = rand(np.random.default_rng(seed), (m, c, kh, kw)).astype(np.float64)
    bound = rank_bound(w.shape)
    r = data.draw(st.integers(1, max(1, bound // 2)))
    e1, e2 = _rel_err(w, r), _rel_err(w, min(2 * r, bound))
    assert e2 <= e1 + 1e-6
    assert _rel_err(w, bound) < 1e-9
    assert e1 < 1.0 + 1e-9  # never worse than the zero tensor


def _conv_module(rng, m, c, kh, kw, **props):
    b = GraphBuilder()
    x = b.add_input("x", (1, c, 9, 8))
    w = rand(rng, (m, c, kh, kw))
    bias = rand(rng, (m,))
    y = b.insert(ConvOp(x, b.constant(w), b.constant(bias), None, **props))
    return b.finish([("y", y)]), w, bias


@given(
    seed=seeds,
    m=st.integers(4, 12),
    c=st.integers(4, 12),
    stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    dil=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    rank=st.integers(1, 6),
)
def test_cp_rewrite_computes_the_reconstructed_conv(seed, m, c, stride, pads, dil, rank):
    rng = np.random.default_rng(seed)
    props = {"strides": stride, "pads": pads, "dilations": dil}
    before, w, bias = _conv_module(rng, m, c, 3, 3, **props)
    after = apply_pass(before, LowRankPass(method="cp", rank=rank))
    if count(after, ConvOp) == 1:  # skipped: not fewer MACs
        assert text(after) == text(before)
        return
    assert count(after, ConvOp) == 4
    assert sum(r.macs for r in layer_infos(after)) < sum(r.macs for r in layer_infos(before))
    first, hw, vw, last = (layer.array.astype(np.float64) for layer in weight_layers(after))
    assert first.shape == (rank, c, 1, 1) and last.shape == (m, rank, 1, 1)
    w_cp = np.einsum("mr,rc,rh,rw->mchw", last[:, :, 0, 0], first[:, :, 0, 0], hw[:, 0, :, 0],
                     vw[:, 0, 0, :])  # fmt: skip
    xin = rand(rng, (1, c, 9, 8))
    expect = conv2d(xin, w_cp, stride, pads, dil, 1) + bias.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(interpret(after, [xin])[0], expect, rtol=1e-4, atol=1e-4)


def test_cp_skips_grouped_and_unprofitable_layers():
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.add_input("x", (1, 4, 6, 6))
    y = b.insert(ConvOp(x, b.constant(rand(rng, (4, 2, 3, 3))), None, None, group=2))
    grouped = b.finish([("y", y)])
    assert text(apply_pass(grouped, LowRankPass(method="cp"))) == text(grouped)
    small, _, _ = _conv_module(rng, 2, 2, 3, 3)
    assert text(apply_pass(small, LowRankPass(method="cp", rank=8))) == text(small)


def _onnx_conv(rng, m=24, c=16):
    w = rng.standard_normal((m, c, 3, 3)).astype(np.float32)
    node = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 0, 1, 2], strides=[2, 1]
    )
    graph = helper.make_graph(
        [node],
        "cp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 12, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_compiled_cp_model_matches_interpreter_and_is_smaller():
    rng = np.random.default_rng(0)
    model = _onnx_conv(rng)
    dense = nnc.compile(model, threads=1)
    cp = nnc.compile(model, threads=1, compress="lowrank=0.3,cp")
    assert count(cp.module, ConvOp) == 4
    x = rng.standard_normal((1, 16, 12, 10)).astype(np.float32)
    np.testing.assert_allclose(cp.run([x])[0], interpret(cp.module, [x])[0], rtol=1e-4, atol=1e-4)
    assert cp.report.total_weight_bytes < 0.4 * dense.report.total_weight_bytes


@pytest.mark.parametrize("bad", ["cp", "energy=0.9,lowrank=0.5,cp"])
def test_compress_cp_needs_lowrank(bad):
    from nnc.compress.spec import parse_compress
    from nnc.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="cp needs lowrank"):
        parse_compress(bad)
