"""Every --quant scheme on nnc.testing.model_zoo models, in the interpreter: the output's
relative RMS error ||y_q - y|| / ||y|| stays within the bound docs/quantization.md states
(random-weight models with random inputs: the worst case for quantization)."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.compiler import compile_model
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConstantOp
from nnc.ir.ops_quant import QuantizeOp
from nnc.quant.driver import quantize_module
from nnc.testing.model_zoo import ZOO, random_inputs

#: docs/quantization.md, "Error bounds".
BOUNDS = {
    "fp16": 1e-3,
    "bf16": 1e-2,
    "int8-weight": 0.03,
    "int8-dynamic": 0.05,
    "int8": 0.1,
    "int4-weight": 0.35,
}


@pytest.fixture(scope="module", params=["mlp", "lenet", "transformer_block"])
def zoo_model(request):
    model = ZOO[request.param]()
    feeds = [list(random_inputs(model, seed).values()) for seed in range(9)]
    ref = compile_model(model, build=False)
    return request.param, ref.module, feeds, interpret(ref.module, feeds[-1])[0]


@pytest.mark.parametrize("quant", sorted(BOUNDS))
def test_scheme_error_within_documented_bound(zoo_model, quant):
    name, float_module, feeds, y0 = zoo_model
    module = float_module.clone()
    quantize_module(module, quant, feeds[:8], measure=False)
    y = interpret(module, feeds[-1])[0]
    err = float(np.linalg.norm(y - y0) / np.linalg.norm(y0))
    assert err <= BOUNDS[quant], f"{name} {quant}: {err:.4f}"
    ops = list(module.walk())
    quantized_weights = [
        op for op in ops if op.name in ("nn.qconv", "nn.qgemm", "nn.wq_conv", "nn.wq_gemm")
    ]
    assert quantized_weights, "nothing was quantized"
    # weights are quantized at compile time: no quantize op reads a constant
    assert not any(
        isinstance(op, QuantizeOp) and isinstance(op.operands[0].owner, ConstantOp) for op in ops
    )


def test_int8_at_o3_quantizes_gemm_gelu_layers():
    """-O3 fuses GELU into the gemm epilogue (fuse-gelu, matmul-bias-to-gemm); int8 static
    still quantizes that layer (int8-dynamic activations, GELU in float) within the int8
    bound, so no float layer with a constant weight is left."""
    model = ZOO["transformer_block"]()
    feeds = [list(random_inputs(model, seed).values()) for seed in range(5)]
    ref = compile_model(model, build=False, opt_level=3)
    assert any(op.name == "nn.gemm" and op.prop("activation") == "gelu" for op in ref.module.walk())
    y0 = interpret(ref.module, feeds[-1])[0]
    module = ref.module.clone()
    quantize_module(module, "int8", feeds[:4], measure=False)
    names = [op.name for op in module.walk()]
    assert "nn.gemm" not in names and names.count("nn.wq_gemm") == 1
    y = interpret(module, feeds[-1])[0]
    assert float(np.linalg.norm(y - y0) / np.linalg.norm(y0)) <= BOUNDS["int8"]
