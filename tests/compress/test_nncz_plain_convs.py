"""The .nncz file and ``--emit`` outputs keep plain convs: the conv-algorithm choice
(Winograd stores dense transformed weights) belongs to the target that compiles them."""

from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnc.compiler import compile_model
from nnc.ir.ops_compute import ConvOp


def _conv_model() -> onnx.ModelProto:
    """One 3x3 conv, 32 -> 32 channels on 28x28: -O3 picks Winograd for it."""
    w = np.random.default_rng(0).standard_normal((32, 32, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 28, 28])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_nncz_codes_the_pruned_weights_not_winograd_ones():
    model, spec = _conv_model(), "prune=0.8,cluster=4bit,huffman"
    forced = compile_model(model, build=False, conv_algo="winograd4")
    assert not any(isinstance(op, ConvOp) for op in forced.module.walk())  # forced: rewritten
    auto = compile_model(model, compress=spec, build=False)  # -O3, nothing forced
    direct = compile_model(model, compress=spec, build=False, conv_algo="direct")
    assert any(isinstance(op, ConvOp) for op in auto.module.walk())
    line = [x for x in auto.report.compression_lines if "nncz" in x]
    assert line == [x for x in direct.report.compression_lines if "nncz" in x]
    ratio = float(re.search(r"([\d.]+)x smaller", line[0]).group(1))
    assert ratio > 10  # Winograd-transformed weights would be dense: about 2x at best
