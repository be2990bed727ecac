"""End-to-end: build small models, load the .so with ctypes, compare with the interpreter."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from llvm_testlib import (
    ModelBuilder,
    concat_residual,
    load_so,
    reshape_chain,
    run_lib,
    small_cnn,
    transformer_head,
)

from nnc.backends.llvm import build, write_artifact
from nnc.backends.llvm.codegen import ERR_NULL_INPUT, ERR_NULL_OUTPUT, ERR_NULL_WORKSPACE
from nnc.ir import ops_compute as oc
from nnc.ir import ops_elementwise as oe
from nnc.ir import ops_shape as osh
from nnc.ir.interpret import interpret

RTOL = 1e-4


def _inputs(result, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s.shape).astype(np.float32) for s in result.inputs]


def _assert_close(got: np.ndarray, want: np.ndarray) -> None:
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale)


def _built(module, tmp_path, name: str = "model", **kw):
    result = build(module, **kw)
    so = write_artifact(result, tmp_path / f"lib{name}.so", "so")
    return result, load_so(so)


@pytest.mark.parametrize(
    "make",
    [small_cnn, concat_residual, reshape_chain, transformer_head],
    ids=["conv_pool_gemm", "concat_residual", "reshape_transpose", "softmax_layernorm"],
)
def test_matches_interpreter(make, tmp_path):
    module = make()
    result, lib = _built(module, tmp_path)
    xs = _inputs(result)
    rc, outs = run_lib(lib, "nnc", xs, [o.shape for o in result.outputs])
    assert rc == 0
    for got, want in zip(outs, interpret(module, xs), strict=True):
        _assert_close(got, want)


def test_run_with_workspace_is_reentrant(tmp_path):
    module = small_cnn()
    result, lib = _built(module, tmp_path)
    shapes = [o.shape for o in result.outputs]
    xs = _inputs(result)
    _, ref = run_lib(lib, "nnc", xs, shapes)
    size = lib.nnc_workspace_size
    size.restype = ctypes.c_size_t
    assert size() == result.workspace_bytes > 0
    ws1 = np.zeros(result.workspace_bytes + 1, np.uint8)
    ws2 = np.full(result.workspace_bytes + 1, 0xFF, np.uint8)  # garbage must not matter
    rc1, out1 = run_lib(lib, "nnc", xs, shapes, workspace=ws1[1:])  # unaligned on purpose
    rc2, out2 = run_lib(lib, "nnc", xs, shapes, workspace=ws2[:-1])
    assert rc1 == rc2 == 0
    for a, b, c in zip(ref, out1, out2, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_null_pointers_are_rejected(tmp_path):
    result, lib = _built(small_cnn(), tmp_path)
    run_ws = lib.nnc_run_with_workspace
    run_ws.argtypes = [ctypes.c_void_p] * 3
    x = np.zeros(result.inputs[0].shape, np.float32)
    y = np.zeros(result.outputs[0].shape, np.float32)
    ins = (ctypes.c_void_p * 1)(x.ctypes.data)
    outs = (ctypes.c_void_p * 1)(y.ctypes.data)
    ws = np.zeros(result.workspace_bytes, np.uint8)
    assert run_ws(None, ins, outs) == ERR_NULL_WORKSPACE
    assert run_ws(ws.ctypes.data, None, outs) == ERR_NULL_INPUT
    assert run_ws(ws.ctypes.data, ins, None) == ERR_NULL_OUTPUT
    assert run_ws(ws.ctypes.data, (ctypes.c_void_p * 1)(None), outs) == ERR_NULL_INPUT
    assert run_ws(ws.ctypes.data, ins, (ctypes.c_void_p * 1)(None)) == ERR_NULL_OUTPUT
    assert not y.any()  # nothing ran
    assert run_ws(ws.ctypes.data, ins, outs) == 0


def test_introspection(tmp_path):
    result, lib = _built(transformer_head(), tmp_path, prefix="tfm")
    for name, restype in (
        ("input_name", ctypes.c_char_p),
        ("output_name", ctypes.c_char_p),
        ("input_shape", ctypes.POINTER(ctypes.c_int64)),
        ("output_shape", ctypes.POINTER(ctypes.c_int64)),
    ):
        getattr(lib, f"tfm_{name}").restype = restype
    assert lib.tfm_num_inputs() == 1 and lib.tfm_num_outputs() == 2
    assert lib.tfm_input_name(0) == b"tokens"
    assert [lib.tfm_output_name(i) for i in range(2)] == [b"probs", b"mean"]
    assert lib.tfm_input_rank(0) == 3 and lib.tfm_output_rank(1) == 2
    assert lib.tfm_input_shape(0)[:3] == [2, 5, 8]
    assert lib.tfm_output_shape(1)[:2] == [2, 6]
    assert lib.tfm_input_dtype(0) == 1 and lib.tfm_output_dtype(1) == 1
    # Out of range: NULL / -1 / 0.
    assert lib.tfm_input_name(1) is None and lib.tfm_output_name(-1) is None
    assert not lib.tfm_output_shape(2)
    assert lib.tfm_input_rank(5) == -1 and lib.tfm_output_dtype(2) == 0
    assert [(s.name, s.shape) for s in result.outputs] == [("probs", (2, 5, 6)), ("mean", (2, 6))]
    assert "tfm_run_with_workspace" in result.header_text
    assert '"tokens": float[2, 5, 8]' in result.header_text


def test_outputs_needing_copies(tmp_path):
    """Outputs that are an input, a reshape of an input, a weight, or the same value twice."""
    g = ModelBuilder(3)
    x = g.add_input("x", (2, 3))
    w = g.weight(3, 2)
    y = g.insert(oc.MatMulOp(x, w))
    flat = g.insert(osh.ReshapeOp(x, shape=(6,)))
    module = g.finish([("x_again", x), ("flat", flat), ("w", w), ("y", y), ("y2", y)])
    result, lib = _built(module, tmp_path)
    xs = _inputs(result)
    rc, outs = run_lib(lib, "nnc", xs, [o.shape for o in result.outputs])
    assert rc == 0
    for got, want in zip(outs, interpret(module, xs), strict=True):
        _assert_close(got, want)
    assert result.step_count == 1 + 4  # the matmul, then 4 copies
    assert result.intermediate_bytes == 0  # the matmul writes straight into output "y"


def test_reshape_of_intermediate_does_not_copy(tmp_path):
    g = ModelBuilder(0)
    x = g.add_input("x", (4, 6))
    y = g.insert(oe.ReluOp(x))
    y = g.insert(osh.ReshapeOp(y, shape=(2, 12)))
    y = g.insert(oe.SigmoidOp(y))
    y = g.insert(osh.ReshapeOp(y, shape=(24,)))
    module = g.finish([("y", y)])
    result, lib = _built(module, tmp_path)
    assert result.step_count == 2  # relu, sigmoid; no copy kernels
    xs = _inputs(result)
    rc, outs = run_lib(lib, "nnc", xs, [(24,)])
    assert rc == 0
    _assert_close(outs[0], interpret(module, xs)[0])


def test_kernels_are_deduplicated():
    g = ModelBuilder(0)
    y = g.add_input("x", (1, 8, 6, 6))
    for _ in range(4):  # same shapes, different weights: one conv kernel
        y = g.conv(y, 8, 3, act="relu")
    module = g.finish([("y", y)])
    result = build(module)
    assert result.kernel_count == 1 and result.step_count == 4


def test_identical_weights_are_stored_once():
    g = ModelBuilder(0)
    x = g.add_input("x", (16, 16))
    w = np.arange(256, dtype=np.float32).reshape(16, 16)
    y = g.insert(oc.MatMulOp(x, g.constant(w)))
    y = g.insert(oc.MatMulOp(y, g.constant(w.copy())))
    result = build(g.finish([("y", y)]))
    assert result.weight_bytes == w.nbytes


def test_every_nn_op_has_a_lowering_rule():
    from nnc.backends.llvm.lower import RULES
    from nnc.ir.dialect import NN_OPS

    special = {oc.ConstantOp, osh.ReshapeOp}
    missing = [c.name for c in NN_OPS if c not in special and not set(c.__mro__) & set(RULES)]
    assert missing == []


def _every_op_model():
    g = ModelBuilder(7)
    x = g.add_input("x", (1, 4, 7, 7))
    outs = []

    def out(v):
        outs.append((f"o{len(outs)}", v))

    w = g.weight(6, 2, 3, 3)
    res = g.insert(
        oc.ConvOp(x, w, None, None, strides=(2, 2), pads=(2, 2, 2, 2), dilations=(2, 2), group=2)
    )
    out(
        g.insert(
            oc.ConvOp(
                x,
                w,
                g.weight(6),
                res,
                strides=(2, 2),
                pads=(2, 2, 2, 2),
                dilations=(2, 2),
                group=2,
                activation="leaky_relu",
                act_alpha=0.1,
            )
        )
    )
    flat = g.insert(osh.ReshapeOp(x, shape=(14, 14)))
    out(g.insert(oc.GemmOp(flat, g.weight(14, 5), g.weight(5), trans_a=1, alpha=0.5, beta=2.0)))
    out(g.insert(oc.MatMulOp(g.insert(osh.ReshapeOp(x, shape=(4, 7, 7))), g.weight(7, 3))))
    scale, bias, mean = g.weight(4), g.weight(4), g.weight(4)
    var = g.constant(np.linspace(0.5, 2, 4).astype(np.float32))
    out(g.insert(oc.BatchNormOp(x, scale, bias, mean, var, epsilon=1e-3)))
    out(
        g.insert(
            oc.MaxPoolOp(
                x, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=1, dilations=(1, 1)
            )
        )
    )
    out(
        g.insert(
            oc.AvgPoolOp(x, kernel=(2, 3), strides=(2, 2), pads=(0, 1, 0, 1), count_include_pad=1)
        )
    )
    out(g.insert(oc.GlobalAvgPoolOp(x)))
    out(g.insert(oc.GlobalMaxPoolOp(x)))
    out(g.insert(oc.LRNOp(x, size=3, alpha=1e-3, beta=0.75, bias=1.0)))
    out(g.insert(oc.LayerNormOp(x, g.weight(7, 7), None, axis=-2, epsilon=1e-5)))
    pos = g.insert(oe.AddOp(g.insert(oe.SigmoidOp(x)), g.constant(np.float32([0.5]))))
    for cls in oe.UNARY_OPS:
        operand = pos if cls in (oe.LogOp, oe.SqrtOp, oe.ReciprocalOp) else x
        op = oe.ClipOp(x, min=-0.5, max=0.5) if cls is oe.ClipOp else cls(operand)
        out(g.insert(op))
    chan = g.weight(1, 4, 1, 1)
    for cls in oe.BINARY_OPS:
        out(g.insert(cls(pos, chan) if cls is oe.PowOp else cls(x, chan)))
    out(g.insert(osh.TransposeOp(x, perm=(0, 2, 3, 1))))
    out(g.insert(osh.ConcatOp(x, g.insert(oe.NegOp(x)), x, axis=2)))
    out(g.insert(osh.SliceOp(x, starts=(6, 1), ends=(0, 7), axes=(2, 3), steps=(-2, 3))))
    out(g.insert(osh.PadOp(x, pads=(0, 0, 2, 1, 0, 0, 1, 3), mode="reflect")))
    out(g.insert(osh.PadOp(x, pads=(0, 1, 1, 0, 0, 0, 2, 2), mode="edge")))
    out(g.insert(osh.SoftmaxOp(x, axis=1)))
    out(g.insert(osh.LogSoftmaxOp(x, axis=-1)))
    out(g.insert(osh.ReduceMeanOp(x, axes=(2, 3), keepdims=1)))
    out(g.insert(osh.ReduceSumOp(x, axes=(1,), keepdims=0)))
    out(g.insert(osh.ReduceMaxOp(x, axes=(0, 3), keepdims=0)))
    return g.finish(outs)


def test_every_op_kind_matches_interpreter(tmp_path):
    module = _every_op_model()
    result, lib = _built(module, tmp_path)
    xs = _inputs(result)
    rc, outs = run_lib(lib, "nnc", xs, [o.shape for o in result.outputs])
    assert rc == 0
    ops = [v.owner.name for v in module.body.block.last_op.body.block.last_op.operands]
    for got, want, name in zip(outs, interpret(module, xs), ops, strict=True):
        scale = max(float(np.abs(want).max()), 1e-6)
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * scale, err_msg=name)


@pytest.mark.slow
def test_resnet18_224_runs_fast(tmp_path):
    import time

    from llvm_testlib import resnet18

    module = resnet18()
    result, lib = _built(module, tmp_path)
    assert result.peak_bytes < result.intermediate_bytes + result.scratch_bytes
    xs = _inputs(result)
    shapes = [o.shape for o in result.outputs]
    run_lib(lib, "nnc", xs, shapes)  # warm up
    start = time.perf_counter()
    rc, outs = run_lib(lib, "nnc", xs, shapes)
    assert rc == 0 and time.perf_counter() - start < 2.0
    _assert_close(outs[0], interpret(module, xs)[0])
