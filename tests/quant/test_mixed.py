"""--quant mixed on the digits CNN: the error budget re-measured on the compiled model,
a size budget that needs int4 layers (native library == interpreter), option errors.
Sensitivity ranking and budget properties on a fragile MLP: tests/passes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from digits import BATCH

from nnc.compiler import compile_model
from nnc.driver.nnc_main import main
from nnc.ir.builder import main_func
from nnc.ir.interpret import interpret
from nnc.quant.mixed import MIB
from nnc.testing.quant_models import fragile_mlp


def test_measured_error_is_the_compiled_models(digits):
    """The budget holds when the error is re-measured independently on the compiled module
    (the plan's first 4 calibration batches), and the sensitive layers stay float."""
    x_max = 0.006
    kw = dict(batch=BATCH, build=False)
    fp32 = compile_model(digits.model, **kw)
    comp = compile_model(
        digits.model, quant="mixed", calibration={"x": digits.x_train[:100]}, max_error=x_max, **kw
    )
    num = den = 0.0
    for i in range(4):
        xb = digits.x_train[i * BATCH : (i + 1) * BATCH]
        y, yq = interpret(fp32.module, [xb])[0], interpret(comp.module, [xb])[0]
        num += float(np.sum((yq.astype(np.float64) - y) ** 2))
        den += float(np.sum(y.astype(np.float64) ** 2))
    assert np.sqrt(num / den) <= x_max
    ops = [op.name for op in main_func(comp.module).body.blocks[0].ops]
    assert 1 <= sum(name in ("nn.conv", "nn.gemm") for name in ops) < 4
    assert any(name.startswith("nn.q") for name in ops)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--quant", "mixed", "--calibration", "c.npz"], "needs --max-error X and/or"),
        (["--max-error", "0.1"], "--max-error is only used with --quant mixed"),
        (["--quant", "int8", "--size-budget", "2"], "--size-budget is only used with"),
        (["--quant", "mixed", "--max-error", "nan"], "--max-error must be a finite number"),
        (["--quant", "mixed", "--max-error", "-1"], "--max-error must be a finite number"),
        (["--quant", "mixed", "--size-budget", "0"], "--size-budget must be a positive"),
        (["--quant", "mixed", "--max-error", "0.1"], "needs --calibration data"),
        (["--quant", "mixed", "--max-error", "0.1", "--granularity", "per-group"], "per-group"),
    ],
)
def test_cli_option_errors(tmp_path, capsys, args, message):
    model = tmp_path / "m.onnx"
    onnx.save(fragile_mlp(), model)
    assert main([str(model), "--emit", "mlir", "-o", str(tmp_path / "o.mlir"), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_size_budget_met_natively_with_int4_when_int8_is_not_enough(digits):
    """All-int8 weights are ~53 KiB: a 0.045 MiB budget needs int4 layers too; the native
    library (int8 + int4 kernels) equals the interpreter."""
    import nnc
    from nnc.errors import UnsupportedOpError

    budget = 0.045
    calib = {"x": digits.x_train[:100]}
    try:
        lib = nnc.compile(
            digits.model, quant="mixed", calibration=calib, size_budget=budget, batch=BATCH
        )
    except UnsupportedOpError as err:  # a target without native integer kernels
        pytest.skip(str(err))
    assert lib.report.total_weight_bytes <= budget * MIB
    ops = [op.name for op in main_func(lib.module).body.blocks[0].ops]
    assert any(name.startswith("nn.wq_") for name in ops) and "nn.qconv" in ops
    x = digits.x_test[:BATCH]
    got, want = lib.run([x])[0], interpret(lib.module, [x])[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
