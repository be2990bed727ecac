"""Pruned / clustered conv weights stored compressed in the library, decoded once
(``kernels/compact_pack.py``, ``compact_conv.py``, pass ``compact-weights``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_wq import build_lowered

from nnc.backends.llvm.kernels import compact_conv
from nnc.backends.llvm.kernels.compact_pack import FORMATS, decode, encode
from nnc.backends.llvm.kernels.pack import pack_conv_weights
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp
from nnc.passes.compact_weights import CompactWeightsPass


def weight(rng, shape, zeros: float, values: int | None) -> np.ndarray:
    """Random weight with a random mask (``zeros`` fraction) and, if ``values``, at most
    that many distinct nonzero values (random codebook)."""
    w = rng.standard_normal(shape).astype(np.float32)
    if values is not None:
        book = rng.standard_normal(values).astype(np.float32)
        w = book[rng.integers(0, values, shape)]
    w[rng.random(shape) < zeros] = 0.0
    return w


@given(st.integers(0, 2**16), st.sampled_from(FORMATS), st.integers(1, 40),
       st.integers(1, 6), st.sampled_from([1, 3]), st.floats(0.0, 1.0))  # fmt: skip
@settings(max_examples=40, deadline=None)
def test_decode_of_encode_is_exact(seed, fmt, m, c, k, zeros):
    rng = np.random.default_rng(seed)
    values = 254 if fmt.endswith("8") else 14 if "codebook" in fmt else None  # + 0, -0
    w = weight(rng, (m, c, k, k), zeros, values)
    w.reshape(-1)[0] = -0.0  # a negative zero is a value, not a pruned weight
    got = decode(encode(w, fmt), fmt, w.shape)
    want = pack_conv_weights(w, 1)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def conv_model(w, rng, h=10, bias=True):
    m, c, kh, _ = w.shape
    b = GraphBuilder()
    x = b.add_input("x", (1, c, h, h))
    bb = b.constant(rng.standard_normal(m).astype(np.float32)) if bias else None
    p = kh // 2
    y = b.insert(ConvOp(x, b.constant(w), bb, None, strides=(1, 1), pads=(p, p, p, p),
                        activation="relu"))  # fmt: skip
    module = b.finish([("y", y)])
    CompactWeightsPass().apply(None, module)
    return module, [rng.standard_normal((1, c, h, h)).astype(np.float32)]


@pytest.mark.parametrize("algo", ["direct", "winograd2", "winograd4"])
@pytest.mark.parametrize("kind", ["sparse", "codebook", "both"])
def test_compact_conv_matches_interpreter(monkeypatch, algo, kind):
    rng = np.random.default_rng(len(algo) * 7 + len(kind))
    zeros = {"sparse": 0.8, "codebook": 0.0, "both": 0.7}[kind]
    w = weight(rng, (24, 8, 3, 3), zeros, None if kind == "sparse" else 14)
    module, feeds = conv_model(w, rng)
    monkeypatch.setattr(compact_conv, "ALGO", algo)
    emitter, run = build_lowered(module, feeds)
    assert emitter == "compact_conv"
    got = run()
    again = run()  # the decoded cache
    np.testing.assert_array_equal(again, got)
    want = interpret(module, feeds)[0]
    tol = {"direct": 1, "winograd2": 8, "winograd4": 32}[algo]
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * tol * (np.abs(want).max() + 1))


def test_pruned_conv_library_is_small(tmp_path):
    """A pruned-80% conv model's .so is < 40% of the dense one (weights stay compressed)."""
    import onnx
    from onnx import helper, numpy_helper

    import nnc

    rng = np.random.default_rng(1)
    w = rng.standard_normal((192, 192, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 192, 4, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 192, 4, 4])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": rng.standard_normal((1, 192, 4, 4)).astype(np.float32)}
    sizes, outs = {}, {}
    for spec in (None, "prune=0.8"):
        lib = nnc.compile(model, compress=spec)
        path = tmp_path / f"{spec}.so"
        lib.save(path)
        sizes[spec] = path.stat().st_size
        outs[spec] = [lib.run(x), lib.run(x)]
    assert sizes["prune=0.8"] < 0.4 * sizes[None], sizes
    np.testing.assert_array_equal(outs["prune=0.8"][0][0], outs["prune=0.8"][1][0])
