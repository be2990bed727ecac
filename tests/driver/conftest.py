"""Fixtures for the command-line tests: ONNX model files, good and bad."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def conv_relu_gemm() -> onnx.ModelProto:
    """x[N,3,8,8] -> Conv 3x3 (4 ch, pad 1) -> Relu -> Flatten -> Gemm (10) -> y[N,10]."""
    rng = np.random.default_rng(0)
    weights = {
        "W": rng.standard_normal((4, 3, 3, 3)) * 0.3,
        "B": rng.standard_normal(4) * 0.1,
        "G": rng.standard_normal((10, 256)) * 0.1,
        "GB": rng.standard_normal(10) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "G", "GB"], ["y"], transB=1, name="fc"),
    ]
    return _model(nodes, weights, ["N", 3, 8, 8], ["N", 10])


def _model(nodes, weights, in_shape, out_shape) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in weights.items()]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="session")
def model_proto() -> onnx.ModelProto:
    return conv_relu_gemm()


@pytest.fixture(scope="session")
def model_file(tmp_path_factory, model_proto) -> Path:
    path = tmp_path_factory.mktemp("models") / "net.onnx"
    onnx.save(model_proto, path)
    return path


@pytest.fixture(scope="session")
def bad_models(tmp_path_factory, model_file) -> dict[str, Path]:
    """Model files nnc must reject: truncated, corrupt, with an unknown op, missing."""
    d = tmp_path_factory.mktemp("bad")
    data = model_file.read_bytes()
    (d / "truncated.onnx").write_bytes(data[: len(data) // 3])
    (d / "corrupt.onnx").write_bytes(
        bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8))
    )
    unknown = _model([helper.make_node("FooBar", ["x"], ["y"], name="mystery")], {}, [1, 4], [1, 4])
    onnx.save(unknown, d / "unknown_op.onnx")
    return {
        "truncated": d / "truncated.onnx",
        "corrupt": d / "corrupt.onnx",
        "unknown_op": d / "unknown_op.onnx",
        "missing": d / "missing.onnx",
    }
