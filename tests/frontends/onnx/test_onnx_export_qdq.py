"""Export of quantized modules to ONNX QDQ (nnc/frontends/onnx/export_qdq.py), checked by
running the exported model in onnxruntime against our interpreter."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from nnc.compiler import compile_model
from nnc.driver.nnc_main import main
from nnc.errors import UnsupportedOpError
from nnc.frontends.onnx.export_qdq import export_qdq
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_elementwise import ErfOp
from nnc.testing.model_zoo import lenet, random_inputs


@pytest.fixture(scope="module")
def lenet_case():
    model = lenet()
    feeds = [random_inputs(model, seed)["input"] for seed in range(5)]
    return model, feeds


@pytest.mark.parametrize(
    "quant", ["int8", "int8-dynamic", "int8-weight", "int4-weight", "fp16", "bf16", "none"]
)
def test_exported_model_runs_in_onnxruntime_and_agrees(lenet_case, quant):
    model, feeds = lenet_case
    comp = compile_model(
        model, quant=quant, calibration=None if quant == "none" else feeds[:4], build=False
    )
    exported = export_qdq(comp.module)
    onnx.checker.check_model(exported)
    types = {n.op_type for n in exported.graph.node}
    if quant == "int8":
        assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= types
    if quant == "int8-dynamic":
        assert {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"} <= types
    sess = ort.InferenceSession(exported.SerializeToString())
    got = sess.run(None, {"input": feeds[4]})[0]
    want = interpret(comp.module, [feeds[4]])[0]
    # int8: onnxruntime's fused integer kernels may round an output once differently
    tol = 0.05 * np.abs(want).max() if quant == "int8" else 1e-4 * (1 + np.abs(want).max())
    assert np.abs(got - want).max() <= tol


def test_cli_emit_onnx(tmp_path, lenet_case):
    model, feeds = lenet_case
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "c.npz", input=np.concatenate(feeds[:4]))
    out = tmp_path / "q.onnx"
    assert (
        main(
            [
                str(path),
                "--quant",
                "int8",
                "--calibration",
                str(tmp_path / "c.npz"),
                "--emit",
                "onnx",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    sess = ort.InferenceSession(str(out))
    assert sess.run(None, {"input": feeds[4]})[0].shape == (1, 10)


def test_unexportable_op_is_a_clear_error():
    b = GraphBuilder()
    x = b.add_input("x", (2,))
    module = b.finish([("y", b.insert(ErfOp(b.insert(ErfOp(x)))))])
    export_qdq(module)  # erf exports
    from nnc.ir.ops_shape import ReduceSumOp

    b = GraphBuilder()
    x = b.add_input("x", (2, 2))
    module = b.finish([("y", b.insert(ReduceSumOp(x, axes=(0,), keepdims=1)))])
    with pytest.raises(UnsupportedOpError, match="cannot export op 'nn.reduce_sum'"):
        export_qdq(module)
