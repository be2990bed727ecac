"""Already-quantized ONNX models (nnc/frontends/onnx/quantized.py) against onnxruntime:
QDQ models from onnxruntime.quantization.quantize_static (fused to nn.qconv/nn.qgemm by
fuse-qdq) within one quantization step; quantize_dynamic models (DynamicQuantizeLinear,
MatMulInteger, ConvInteger); hand-made QLinearConv / QLinearMatMul."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.compiler import compile_model
from nnc.errors import UnsupportedOpError
from nnc.ir.interpret import interpret
from nnc.testing.model_zoo import lenet, mlp

logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's advice lines


def _ops(module) -> list[str]:
    return [op.name for op in module.walk()]


def _feeds(shape, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


@pytest.fixture(scope="module")
def lenet_qdq(tmp_path_factory):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    d = tmp_path_factory.mktemp("qdq")
    onnx.save(lenet(), d / "f.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x} for x in _feeds((1, 1, 28, 28), 8)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(d / "f.onnx"),
        str(d / "q.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
    )
    return d / "q.onnx"


def test_qdq_model_from_quantize_static_matches_onnxruntime(lenet_qdq):
    comp = compile_model(lenet_qdq, build=False)
    ops = _ops(comp.module)
    assert ops.count("nn.qconv") == 2 and ops.count("nn.qgemm") == 3
    assert "nn.conv" not in ops and "nn.gemm" not in ops
    sess = ort.InferenceSession(str(lenet_qdq))
    model = onnx.load(lenet_qdq)
    out_dq = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    step = float(inits[out_dq.input[1]])
    lib = nnc.compile(lenet_qdq)  # native integer kernels
    for x in _feeds((1, 1, 28, 28), 4, seed=1):
        got = interpret(comp.module, [x])[0]
        want = sess.run(None, {"input": x})[0]
        assert np.abs(got - want).max() <= step * 1.001
        np.testing.assert_array_equal(lib.run([x])[0], got)


@pytest.mark.parametrize("make, shape", [(mlp, (1, 64)), (lenet, (1, 1, 28, 28))])
def test_dynamic_quantized_model_matches_onnxruntime(tmp_path, make, shape):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx.save(make(), tmp_path / "f.onnx")
    quantize_dynamic(
        str(tmp_path / "f.onnx"),
        str(tmp_path / "d.onnx"),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm", "Conv"],
    )
    comp = compile_model(tmp_path / "d.onnx", build=False)
    ops = _ops(comp.module)
    assert "nn.dynamic_quantize" in ops and "nn.matmul_integer" in ops
    sess = ort.InferenceSession(str(tmp_path / "d.onnx"))
    name = sess.get_inputs()[0].name
    lib = nnc.compile(tmp_path / "d.onnx")  # native (scalar integer loops)
    for x in _feeds(shape, 2):
        want = sess.run(None, {name: x})[0]
        got = interpret(comp.module, [x])[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(lib.run([x])[0], got)


def _qlinear_model(kind: str, w_dtype=np.int8, w_zp=0) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    if kind == "conv":
        w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(w_dtype)
        x_shape, y_shape = [1, 3, 6, 6], [1, 4, 6, 6]
        inputs = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"]
        node = helper.make_node("QLinearConv", inputs, ["y"], pads=[1, 1, 1, 1])
        extra = [
            numpy_helper.from_array(rng.integers(-300, 300, 4).astype(np.int32), "b"),
            numpy_helper.from_array(rng.uniform(0.01, 0.02, 4).astype(np.float32), "ws"),
            numpy_helper.from_array(np.full(4, w_zp, w_dtype), "wz"),
        ]
    else:
        w = rng.integers(-127, 128, (8, 5)).astype(w_dtype)
        x_shape, y_shape = [2, 8], [2, 5]
        node = helper.make_node(
            "QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"]
        )
        extra = [
            numpy_helper.from_array(np.array(0.015, np.float32), "ws"),
            numpy_helper.from_array(np.array(w_zp, w_dtype), "wz"),
        ]
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(120, np.uint8), "xz"),
        numpy_helper.from_array(np.array(0.2, np.float32), "ys"),
        numpy_helper.from_array(np.array(100, np.uint8), "yz"),
        *extra,
    ]
    # float model boundary, as onnxruntime's QOperator models have
    nodes = [
        helper.make_node("QuantizeLinear", ["xf", "xs", "xz"], ["x"]),
        node,
        helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["yf"]),
    ]
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("xf", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("yf", TensorProto.FLOAT, y_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("kind, op", [("conv", "nn.qconv"), ("matmul", "nn.qgemm")])
def test_qlinear_ops_match_onnxruntime(kind, op):
    model = _qlinear_model(kind)
    comp = compile_model(model, build=False)
    assert op in _ops(comp.module)
    sess = ort.InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(0)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    for _ in range(3):
        x = rng.uniform(-6, 6, shape).astype(np.float32)
        got = interpret(comp.module, [x])[0]
        want = sess.run(None, {"xf": x})[0]
        assert np.abs(got - want).max() <= 0.2 * 1.001  # one output step (y_scale 0.2)


def test_uint8_weights_with_zero_points_are_a_clear_error():
    with pytest.raises(UnsupportedOpError, match="QLinearConv node .* only int8 weights"):
        compile_model(_qlinear_model("conv", np.uint8, 128), build=False)
