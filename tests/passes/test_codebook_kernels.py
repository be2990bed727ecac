"""``codebook-kernels`` / ``nn.codebook_gemm``: index packing round-trips, the rewrite is
exact (interpreter == dense gemm on the decoded weight), the native kernel (every lookup
mode this host can run) == interpreter, and the library really shrinks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from pass_testing import apply_pass, count, rand, seeds, text

import nnc
from nnc.backends.llvm.kernels import codebook_gemm as kernel
from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_codebook import CodebookGemmOp, decode_weight, pack_indices, unpack_indices
from nnc.ir.ops_compute import GemmOp
from nnc.passes.codebook_kernels import CodebookKernelsPass


@given(seed=seeds, n=st.integers(1, 40), k=st.integers(1, 9), bits=st.integers(1, 8))
def test_pack_unpack_round_trips(seed, n, k, bits):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 1 << bits, (n, k)).astype(np.uint8)
    packed = pack_indices(idx, bits)
    assert packed.nbytes == -(-n // 16) * k * (8 if bits <= 4 else 16)
    np.testing.assert_array_equal(unpack_indices(packed, n, bits), idx)


def _clustered_gemm(rng, n, k, batch, values, trans_b=1, bias=True):
    book = rng.uniform(-1, 1, values).astype(np.float32)
    w = book[rng.integers(0, values, (n, k))]
    b = GraphBuilder()
    x = b.add_input("x", (batch, k))
    c = b.constant(rand(rng, (n,))) if bias else None
    y = b.insert(GemmOp(x, b.constant(w if trans_b else w.T.copy()), c, trans_b=trans_b))
    return b.finish([("y", y)]), w


@given(
    seed=seeds,
    n=st.integers(1, 37),
    k=st.integers(1, 23),
    values=st.integers(1, 300),
    trans_b=st.integers(0, 1),
    bias=st.booleans(),
)
def test_rewrite_is_exact_and_picks_the_narrowest_index(seed, n, k, values, trans_b, bias):
    rng = np.random.default_rng(seed)
    before, w = _clustered_gemm(rng, n, k, 3, values, trans_b, bias)
    after = apply_pass(before, CodebookKernelsPass(min_params=0))
    distinct = len(np.unique(w))
    if distinct > 256:
        assert text(after) == text(before)
        return
    (op,) = [o for o in after.walk() if isinstance(o, CodebookGemmOp)]
    assert op.prop("bits") == (4 if distinct <= 16 else 8)
    np.testing.assert_array_equal(op.dense_weight(), w)
    xin = rand(rng, (3, k))
    np.testing.assert_allclose(
        interpret(after, [xin])[0], interpret(before, [xin])[0], rtol=1e-5, atol=1e-5
    )


def test_unfit_gemms_stay_dense():
    rng = np.random.default_rng(0)
    before, _ = _clustered_gemm(rng, 8, 8, 1, 4)
    assert text(apply_pass(before, CodebookKernelsPass())) == text(before)  # < min-params
    b = GraphBuilder()
    x = b.add_input("x", (2, 40))
    y = b.insert(GemmOp(x, b.constant(rand(rng, (40, 40))), None, trans_b=1))  # 1600 values
    dense = b.finish([("y", y)])
    assert text(apply_pass(dense, CodebookKernelsPass(min_params=0, max_bits=4))) == text(dense)


@pytest.mark.parametrize("kwargs", [{"max_bits": 5}, {"min_params": -1}])
def test_bad_options_raise(kwargs):
    with pytest.raises(InvalidOptionError, match="codebook-kernels: "):
        CodebookKernelsPass(**kwargs)


def _onnx_gemm(rng, n, k, batch, values):
    book = rng.standard_normal(values).astype(np.float32)
    w = book[rng.integers(0, values, (n, k))]
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y0"], transB=1)
    relu = helper.make_node("Relu", ["y0"], ["y"])
    graph = helper.make_graph(
        [node, relu],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n])],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, w


def _modes():
    from llvmlite import ir

    feats = kernel.target_features(kernel.module_target(ir.Module()))
    return ["scalar"] + [m for m, f in (("avx2", "avx2"), ("avx512", "avx512f")) if f in feats]


@pytest.mark.parametrize(
    "mode, n, k, batch, values",
    [(m, 45, 37, 1, 16) for m in _modes()]
    + [("auto", 100, 64, 13, 9), ("auto", 33, 20, 2, 200), ("scalar", 17, 5, 3, 150)],
)
def test_compiled_kernel_matches_interpreter_and_decoded_reference(
    mode, n, k, batch, values, monkeypatch
):
    if mode != "auto":
        monkeypatch.setattr(kernel, "lut_mode", lambda module, bits: mode)
    rng = np.random.default_rng(n * k + batch)
    model, w = _onnx_gemm(rng, n, k, batch, values)
    m = nnc.compile(model, threads=1, passes="codebook-kernels{min-params=0}")
    (op,) = [o for o in m.module.walk() if isinstance(o, CodebookGemmOp)]
    np.testing.assert_array_equal(op.dense_weight(), w)
    x = rng.standard_normal((batch, k)).astype(np.float32)
    want = interpret(m.module, [x])[0]
    np.testing.assert_allclose(m.run([x])[0], want, rtol=1e-4, atol=1e-4)
    ref = np.maximum(x.astype(np.float64) @ w.T + _bias(m.module), 0)  # decoded dense
    np.testing.assert_allclose(want, ref, rtol=1e-4, atol=1e-4)


def _bias(module) -> np.ndarray:
    (op,) = [o for o in module.walk() if isinstance(o, CodebookGemmOp)]
    return op.operand_named("bias").owner.prop("value").array.astype(np.float64)


def test_four_bit_library_is_about_eight_times_smaller(tmp_path):
    rng = np.random.default_rng(5)
    model, _ = _onnx_gemm(rng, 256, 256, 1, 16)
    dense = nnc.compile(model, threads=1)
    cb = nnc.compile(model, threads=1, compress="codebook")
    assert count(cb.module, CodebookGemmOp) == 1
    assert cb.report.total_weight_bytes * 7 < dense.report.total_weight_bytes
    dense.save(tmp_path / "libd.so")
    cb.save(tmp_path / "libc.so")
    d_size, c_size = ((tmp_path / f).stat().st_size for f in ("libd.so", "libc.so"))
    assert d_size - c_size > 0.8 * 256 * 256 * 4 * (1 - 1 / 8)
    x = rng.standard_normal((1, 256)).astype(np.float32)
    np.testing.assert_allclose(cb.run([x])[0], dense.run([x])[0], rtol=1e-4, atol=1e-3)


def test_decode_weight_matches_codebook_lookup():
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 16, (21, 6)).astype(np.uint8)
    book = rng.standard_normal(16).astype(np.float32)
    np.testing.assert_array_equal(decode_weight(pack_indices(idx, 4), book, 21, 4), book[idx])


def test_parallel_tiles_match_interpreter(monkeypatch):
    from nnc.backends.llvm import parallel

    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    rng = np.random.default_rng(9)
    model, _ = _onnx_gemm(rng, 70, 33, 5, 12)
    m = nnc.compile(model, threads=2, passes="codebook-kernels{min-params=0}")
    x = rng.standard_normal((5, 33)).astype(np.float32)
    np.testing.assert_allclose(m.run([x])[0], interpret(m.module, [x])[0], rtol=1e-4, atol=1e-4)
