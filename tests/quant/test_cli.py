"""--quant and its options on the command line and the API: the report's quantization
table, the no-calibration warning, the quantized IR, and clean errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from nnc.driver.nnc_main import main
from nnc.ir.text import load_text
from nnc.testing.model_zoo import lenet


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    path = d / "lenet.onnx"
    onnx.save(lenet(), path)
    rng = np.random.default_rng(0)
    np.savez(d / "calib.npz", input=rng.standard_normal((4, 1, 28, 28)).astype(np.float32))
    return path, d / "calib.npz"


@pytest.mark.parametrize(
    "args, scheme, op",
    [
        (
            ["--quant", "int8", "--calib-method", "percentile"],
            "int8 static per-channel",
            "nn.qconv",
        ),
        (
            ["--quant", "int8", "--symmetric", "--granularity", "per-tensor"],
            "per-tensor",
            "nn.qgemm",
        ),
        (
            ["--quant", "int4-weight", "--group-size", "64", "--asymmetric"],
            "u4 weight-only group 64",
            "nn.wq_gemm",
        ),
        (["--quant", "bf16"], "bf16 weights", "nn.wq_conv"),
    ],
)
def test_report_table_and_ir(lenet_file, tmp_path, capsys, args, scheme, op):
    model, calib = lenet_file
    out = tmp_path / "net.mlir"
    status = main(
        [
            str(model),
            "--emit",
            "mlir",
            "-o",
            str(out),
            "--report",
            "--calibration",
            str(calib),
            *args,
        ]
    )
    assert status == 0, capsys.readouterr().err
    report = capsys.readouterr().out
    assert "relative RMS" in report and scheme in report and "quantized weights" in report
    module = load_text(str(out))
    assert any(o.name == op for o in module.walk())


def test_int8_without_calibration_warns_and_goes_dynamic(lenet_file, tmp_path, capsys):
    model, _ = lenet_file
    status = main(
        [
            str(model),
            "--emit",
            "mlir",
            "-o",
            str(tmp_path / "n.mlir"),
            "--report",
            "--quant",
            "int8",
        ]
    )
    assert status == 0
    report = capsys.readouterr().out
    assert "warning: no calibration data" in report and "int8 dynamic" in report


def test_quantized_library_builds_or_fails_cleanly(lenet_file, tmp_path, capsys):
    model, calib = lenet_file
    status = main(
        [
            str(model),
            "-o",
            str(tmp_path / "libq.so"),
            "--quant",
            "int8",
            "--calibration",
            str(calib),
        ]
    )
    err = capsys.readouterr().err
    if status == 0:  # native integer kernels are in
        assert (tmp_path / "libq.so").exists()
        return
    assert status == 1 and err.startswith("nnc: error: op 'nn.") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_calibration_file(lenet_file, tmp_path, capsys):
    model, _ = lenet_file
    bad = tmp_path / "c.npz"
    np.savez(bad, wrong=np.zeros((1, 1, 28, 28), np.float32))
    status = main(
        [
            str(model),
            "--emit",
            "mlir",
            "-o",
            str(tmp_path / "n.mlir"),
            "--quant",
            "int8",
            "--calibration",
            str(bad),
        ]
    )
    err = capsys.readouterr().err
    assert status == 1 and "no array for input(s) input" in err


def test_api_int8_without_calibration_runs_natively_as_dynamic(lenet_file):
    import nnc
    from nnc.ir.interpret import interpret

    model, _ = lenet_file
    lib = nnc.compile(str(model), quant="int8")
    assert any("no calibration data" in line for line in lib.report.quant_lines)
    x = np.random.default_rng(3).standard_normal((1, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(lib.run([x])[0], interpret(lib.module, [x])[0])
