"""``nnc --layout`` and ``nnc.compile(layout=...)``: nchwc runs conv chains blocked."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.driver.nnc_main import main
from nnc.errors import InvalidOptionError


def conv_chain() -> onnx.ModelProto:
    """x[1,3,10,10] -> Conv 3x3 (20) -> Relu -> Conv 3x3 (20) -> Add x1 -> Relu -> MaxPool
    -> Conv 1x1 (24) -> y."""
    rng = np.random.default_rng(0)
    w = {
        "W1": rng.standard_normal((20, 3, 3, 3)) * 0.3,
        "W2": rng.standard_normal((20, 20, 3, 3)) * 0.1,
        "W3": rng.standard_normal((24, 20, 1, 1)) * 0.2,
        "B": rng.standard_normal(20) * 0.1,
    }
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in w.items()]
    nodes = [
        helper.make_node("Conv", ["x", "W1", "B"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "W2", "B"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("Relu", ["s"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "W3"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 5, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_compile_nchwc_matches_onnxruntime():
    model = conv_chain()
    compiled = nnc.compile(model, layout="nchwc", threads=1)
    assert compiled.report.pipeline.endswith("nchwc-layout,dce")
    x = np.random.default_rng(2).standard_normal((1, 3, 10, 10), dtype=np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = compiled.run([x])
    np.testing.assert_allclose(y, sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
    plain = nnc.compile(model, threads=1)  # the report counts the same MACs either way
    assert compiled.report.total_macs == plain.report.total_macs > 0


def test_cli_layout_nchwc_emits_blocked_ir(tmp_path):
    src, out = tmp_path / "m.onnx", tmp_path / "m.mlir"
    onnx.save(conv_chain(), src)
    assert main([str(src), "--layout", "nchwc", "--emit", "mlir", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.count('"nn.conv_blocked"') == 3 and '"nn.conv"' not in text
    assert text.count('"nn.to_blocked"') == 1 and text.count('"nn.from_blocked"') == 1
    assert '"nn.max_pool_blocked"' in text


def test_bad_layout_is_a_one_line_error(tmp_path, capsys):
    src = tmp_path / "m.onnx"
    onnx.save(conv_chain(), src)
    assert main([str(src), "--layout", "nhwc", "-o", str(tmp_path / "a.so")]) == 2
    err = capsys.readouterr().err
    assert "--layout" in err and "nhwc" in err
    with pytest.raises(InvalidOptionError, match="unknown --layout 'nhwc'"):
        nnc.compile(src, layout="nhwc")
