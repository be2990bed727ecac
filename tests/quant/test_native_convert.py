"""Native quantize / dequantize / requantize kernels (kernels/quant_convert.py) equal the
interpreter bit for bit, including rounding ties, clamping and per-channel and per-group
parameters (serial and parallel code), also for an imported blocked ONNX QDQ pair."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.backends.llvm import build, parallel, write_artifact
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_quant import DequantizeOp, QuantizeOp, RequantizeOp
from nnc.runtime.library import NativeLibrary


def _p(s, z):
    return {"scale": np.asarray(s, np.float32), "zero_point": np.asarray(z, np.int32)}


@pytest.mark.parametrize("dtype", ["u8", "i8"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_convert_kernels_match_interpreter(tmp_path, dtype, per_channel):
    rng = np.random.default_rng(1)
    shape = (2, 3, 4, 5)
    if per_channel:
        s = np.array([0.5, 0.1, 0.03], np.float32)
        z = np.array([3, 0, 10], np.int32) if dtype == "u8" else np.zeros(3, np.int32)
    else:
        s, z = np.float32(0.25), np.int32(128 if dtype == "u8" else 0)
    b = GraphBuilder()
    x = b.add_input("x", shape)
    q = b.insert(QuantizeOp(x, dtype=dtype, axis=1, **_p(s, z)))
    r = b.insert(
        RequantizeOp(
            q, x_scale=float(np.max(s)), x_zp=int(np.max(z)), y_scale=0.07, y_zp=5, dtype="u8"
        )
    )
    y1 = b.insert(DequantizeOp(q, axis=1, **_p(s, z)))
    y2 = b.insert(DequantizeOp(r, **_p(0.07, 5)))
    module = b.finish([("a", y1), ("b", y2)])
    xin = (rng.standard_normal(shape) * 20).astype(np.float32)
    xin.reshape(-1)[:8] = [0.125, 0.375, -0.125, -0.375, 1e9, -1e9, 0.0, 2.5]  # ties, clamps
    so = write_artifact(build(module), tmp_path / "libq.so", "so")
    got = NativeLibrary(so, "nnc").run([xin])
    for g, w in zip(got, interpret(module, [xin]), strict=True):
        np.testing.assert_array_equal(g, w)


def _per_group(rng, shape, axis, gs, dtype):
    """Random per-group scale / zero point of ``shape`` blocked by ``gs`` along ``axis``."""
    pshape = list(shape)
    pshape[axis] = -(-shape[axis] // gs)
    s = rng.uniform(0.02, 0.6, pshape).astype(np.float32)
    lo, hi = (0, 256) if dtype == "u8" else (-20, 21)
    return s, rng.integers(lo, hi, pshape).astype(np.int32)


# (shape, axis, group size): whole and partial groups, inner/outer dims, one group, block 1.
PER_GROUP_CASES = [
    ((3, 8), 1, 4),
    ((3, 10), -1, 4),
    ((2, 7, 3), 1, 3),
    ((2, 6, 5), 1, 2),
    ((5, 4), 0, 2),
    ((2, 3, 4, 5), 2, 3),
    ((4, 9), 1, 16),
    ((6, 5), 0, 1),
    ((3, 37, 100), 1, 5),  # > FLAT_BLOCK: several tasks, blocks start mid-group
]


def _check_per_group(shape, axis, gs, seed, outdir) -> None:
    """Per-group quantize (i8 and u8) and dequantize (i8, u8 and i32 inputs): native code
    equals the interpreter bit for bit."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.add_input("x", shape)
    qi = b.add_input("qi", shape, "i32")
    outs = []
    for dtype in ("u8", "i8"):
        s, z = _per_group(rng, shape, axis, gs, dtype)
        q = b.insert(QuantizeOp(x, dtype=dtype, axis=axis, group_size=gs, **_p(s, z)))
        s2, z2 = _per_group(rng, shape, axis, gs, dtype)
        outs += [(f"q{dtype}", q)]
        outs += [(f"d{dtype}", b.insert(DequantizeOp(q, axis=axis, group_size=gs, **_p(s2, z2))))]
    s3, z3 = _per_group(rng, shape, axis, gs, "i8")
    outs.append(("di32", b.insert(DequantizeOp(qi, axis=axis, group_size=gs, **_p(s3, z3)))))
    module = b.finish(outs)
    xin = (rng.standard_normal(shape) * 20).astype(np.float32)
    special = np.array([0.125, -0.375, 1e9, -1e9, np.nan, 2.5], np.float32)  # ties, clamps
    n = min(special.size, xin.size)
    xin.reshape(-1)[:n] = special[:n]
    qin = rng.integers(-(2**20), 2**20, shape).astype(np.int32)
    so = write_artifact(build(module), outdir / "libg.so", "so")
    got = NativeLibrary(so, "nnc").run([xin, qin])
    want = interpret(module, [xin, qin])
    for (name, _), g, w in zip(outs, got, want, strict=True):
        np.testing.assert_array_equal(g, w, err_msg=name)


@pytest.mark.parametrize("parallel_code", [False, True])
@pytest.mark.parametrize("case", PER_GROUP_CASES)
def test_per_group_convert_matches_interpreter(tmp_path, monkeypatch, case, parallel_code):
    shape, axis, gs = case
    if parallel_code:
        monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    _check_per_group(shape, axis, gs, sum(shape) * 31 + gs, tmp_path)


@settings(max_examples=12, deadline=None)
@given(
    st.lists(st.integers(1, 9), min_size=1, max_size=4),
    st.integers(0, 3),
    st.integers(1, 10),
    st.integers(0, 2**16),
)
def test_per_group_convert_property(dims, axis_pick, gs, seed):
    """Any shape / axis / group size (dividing the axis or not): native == interpreter."""
    axis = axis_pick % len(dims) - (seed % 2) * len(dims)  # negative axes too
    with tempfile.TemporaryDirectory() as d:
        _check_per_group(tuple(dims), axis, gs, seed, Path(d))


def test_per_group_onnx_activation_qdq_compiles_natively():
    """Blocked (opset 21) QuantizeLinear -> DequantizeLinear on an activation: nnc.compile
    builds native code equal to the interpreter and to onnxruntime."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    import nnc
    from nnc.compiler import compile_model

    rng = np.random.default_rng(3)
    shape, axis, block = (2, 10, 3), 1, 4
    s, z = _per_group(rng, shape, axis, block, "u8")
    inits = [numpy_helper.from_array(a, n) for a, n in ((s, "s"), (z.astype(np.uint8), "z"))]
    inits.append(numpy_helper.from_array(np.float32(0.5), "half"))
    attrs = {"axis": axis, "block_size": block}
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "s", "z"], ["q"], **attrs),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], **attrs),
        helper.make_node("Mul", ["d", "half"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "blocked_qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    onnx.checker.check_model(model)
    module = compile_model(model, build=False).module
    ops = [op.name for op in module.walk()]
    assert "nn.quantize" in ops and "nn.dequantize" in ops
    lib = nnc.compile(model)
    sess = ort.InferenceSession(model.SerializeToString())
    for seed in range(3):
        x = (np.random.default_rng(seed).standard_normal(shape) * 30).astype(np.float32)
        got = lib.run([x])[0]
        np.testing.assert_array_equal(got, interpret(module, [x])[0])
        np.testing.assert_allclose(got, sess.run(None, {"x": x})[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["gemm", "conv"])
def test_dynamic_layers_match_interpreter_bit_for_bit(tmp_path, kind):
    from nnc.ir.dialect import make_context
    from nnc.ir.ops_compute import ConvOp, GemmOp
    from nnc.passes.quantize import QuantizePass

    rng = np.random.default_rng(7)
    b = GraphBuilder()
    if kind == "gemm":
        x = b.add_input("x", (3, 20))
        w, c = rng.standard_normal((20, 6)).astype(np.float32), rng.standard_normal(6)
        y = b.insert(GemmOp(x, b.constant(w), b.constant(c.astype(np.float32)),
                            activation="relu"))  # fmt: skip
        xin = rng.standard_normal((3, 20)).astype(np.float32)
    else:
        x = b.add_input("x", (1, 4, 6, 5))
        w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
        r = b.add_input("r", (1, 6, 3, 2))
        y = b.insert(ConvOp(x, b.constant(w), None, r, strides=(2, 2), pads=(1, 1, 1, 0),
                            group=2, activation="clip", act_alpha=-1.0, act_beta=2.0))  # fmt: skip
        xin = [rng.standard_normal((1, 4, 6, 5)).astype(np.float32),
               rng.standard_normal((1, 6, 3, 2)).astype(np.float32)]  # fmt: skip
    module = b.finish([("y", y)])
    QuantizePass(mode="int8-dynamic").apply(make_context(), module)
    feeds = xin if isinstance(xin, list) else [xin]
    so = write_artifact(build(module), tmp_path / "libd.so", "so")
    got = NativeLibrary(so, "nnc").run(feeds)[0]
    np.testing.assert_array_equal(got, interpret(module, feeds)[0])
