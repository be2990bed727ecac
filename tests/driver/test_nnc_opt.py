"""The nnc-opt driver: text in, passes, text out; one-line user errors, no tracebacks."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

from nnc.driver.nnc_opt_main import main
from nnc.ir import GraphBuilder
from nnc.ir.ops_compute import BatchNormOp, ConvOp
from nnc.ir.text import load_text, module_to_text, save_text, sidecar_path


def conv_bn_module(channels: int = 2, size: int = 3):
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.add_input("x", (1, channels, size, size))
    w = rng.normal(size=(channels, channels, 3, 3)).astype(np.float32)
    c = b.insert(ConvOp(x, b.constant(w), None, None, pads=(1, 1, 1, 1)))
    stats = [b.constant(np.full(channels, v, np.float32)) for v in (2.0, 1.0, 0.5, 1.0)]
    return b.finish([("y", b.insert(BatchNormOp(c, *stats)))])


def test_runs_pipeline_and_prints_ir(tmp_path, capsys):
    path = tmp_path / "m.mlir"
    path.write_text(module_to_text(conv_bn_module()))
    assert main([str(path), "-p", "fold-batchnorm", "--report"]) == 0
    out, err = capsys.readouterr()
    assert "nn.conv" in out and "nn.batch_norm" not in out
    assert "fold-batchnorm: folded batch_norm into nn.conv: 1" in err


def test_reads_stdin_and_applies_o_level(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(module_to_text(conv_bn_module())))
    assert main(["-", "-O", "2"]) == 0
    assert "nn.batch_norm" not in capsys.readouterr().out


def test_output_file_with_sidecar_weights_round_trips(tmp_path):
    src, out = tmp_path / "big.mlir", tmp_path / "out.mlir"
    save_text(conv_bn_module(channels=8), str(src))  # 8*8*3*3 floats: goes to the side-car
    assert (tmp_path / "big.weights.npz").exists()
    assert main([str(src), "-p", "fold-batchnorm", "-o", str(out)]) == 0
    assert (tmp_path / "out.weights.npz").exists() and sidecar_path(str(out)).endswith(".npz")
    module = load_text(str(out))
    module.verify()
    assert not any(isinstance(op, BatchNormOp) for op in module.walk())


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "nope"], "nnc-opt: error: unknown pass 'nope'"),
        (["-p", "specialize-shapes{batch=x}"], "nnc-opt: error: pass 'specialize-shapes': option"),
        (["-p", "cse{"], "nnc-opt: error: bad pass pipeline 'cse{'"),
    ],
)
def test_user_errors_are_one_line_with_status_1(tmp_path, capsys, args, message):
    path = tmp_path / "m.mlir"
    path.write_text(module_to_text(conv_bn_module()))
    assert main([str(path), *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message) and err.count("\n") == 1


def test_missing_file_and_parse_error(tmp_path, capsys):
    assert main([str(tmp_path / "none.mlir"), "-p", "dce"]) == 1
    assert capsys.readouterr().err.startswith("nnc-opt: error: cannot read ")
    bad = tmp_path / "bad.mlir"
    bad.write_text('builtin.module {\n  %0 = "nn.nope"() : () -> tensor<2xf32>\n}\n')
    assert main([str(bad), "-p", "dce"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"nnc-opt: error: {bad}:2:17: Operation nn.nope is not registered")
    assert err.count("\n") == 1


def test_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nnc.driver.nnc_opt_main", str(tmp_path / "x"), "-p", "dce"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("nnc-opt: error: cannot read")


def test_bad_command_line_is_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["-", "--no-such-flag"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "nnc-opt: error: unrecognized arguments: --no-such-flag\n"
