"""The ``nnc`` command line: artifacts, default names, reports and one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from nnc.driver.nnc_main import main
from nnc.ir.text import load_text
from nnc.runtime import load_library, nnc_prefixes

NNC = Path(sys.executable).with_name("nnc")


def _elf_type(path: Path) -> int:
    """e_type of an ELF file (1 relocatable, 3 shared object)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", f"{path} is not ELF"
    return int.from_bytes(data[16:18], "little" if data[5] == 1 else "big")


def test_cli_writes_library_and_header(model_file, model_proto, tmp_path):
    out = tmp_path / "out" / "libnet.so"
    out.parent.mkdir()
    proc = subprocess.run(
        [str(NNC), str(model_file), "-o", str(out)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert sorted(p.name for p in out.parent.iterdir()) == ["libnet.h", "libnet.so"]
    assert _elf_type(out) == 3
    header = out.with_suffix(".h").read_text()
    assert "int32_t nnc_run(const void *const *inputs, void *const *outputs);" in header
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8), dtype=np.float32)
    sess = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = load_library(out).run([x])
    np.testing.assert_allclose(y, sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_cli_user_error_is_one_line_without_traceback(bad_models, tmp_path):
    proc = subprocess.run(
        [str(NNC), str(bad_models["unknown_op"]), "-o", str(tmp_path / "a.so")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("nnc: error: unsupported op 'FooBar' (node 'mystery'")
    assert list(tmp_path.iterdir()) == []


def _check_kind(kind: str, path: Path) -> None:
    data = path.read_bytes()
    assert data, f"{path} is empty"
    if kind == "so":
        assert _elf_type(path) == 3
    elif kind == "obj":
        assert _elf_type(path) == 1
    elif kind == "static":
        assert data.startswith(b"!<arch>\n")
    elif kind == "asm":
        assert b"nnc_run_with_workspace:" in data and b".text" in data
    elif kind == "llvm":
        assert b"target triple" in data and b"define " in data and b"@nnc_run(" in data
    elif kind == "mlir":
        names = [op.name for op in load_text(str(path)).walk()]
        assert "nn.conv" in names and "nn.gemm" in names
    elif kind == "header":
        assert b"nnc_run_with_workspace" in data and b"#include <stdint.h>" in data


@pytest.mark.parametrize(
    "kind, name, extra",
    [
        ("so", "libnet.so", ["libnet.h"]),
        ("obj", "net.o", []),
        ("static", "libnet.a", ["libnet.h"]),
        ("asm", "net.s", []),
        ("llvm", "net.ll", []),
        ("mlir", "net.mlir", ["net.weights.npz"]),
        ("header", "libnet.h", []),
    ],
)
def test_every_emit_kind_with_default_names(model_file, tmp_path, monkeypatch, kind, name, extra):
    monkeypatch.chdir(tmp_path)
    assert main([str(model_file), "--emit", kind]) == 0
    assert sorted(os.listdir(tmp_path)) == sorted([name, *extra])
    _check_kind(kind, tmp_path / name)


@pytest.mark.parametrize(
    "target, machine, symbols",
    [("aarch64-linux-gnu", 183, "64-bit"), ("thumbv7em-none-unknown-eabihf", 40, "32-bit")],
)
def test_cross_target_objects(model_file, tmp_path, target, machine, symbols):
    out = tmp_path / "net.o"
    assert main([str(model_file), "--target", target, "--emit", "obj", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert _elf_type(out) == 1 and int.from_bytes(data[18:20], "little") == machine
    assert data[4] == (2 if symbols == "64-bit" else 1)
    assert nnc_prefixes(out) == ["nnc"]  # the ELF reader handles both classes


def test_bare_metal_target_cannot_make_a_shared_library(model_file, tmp_path, capsys):
    args = [
        str(model_file),
        "--target",
        "thumbv7em-none-unknown-eabihf",
        "-o",
        str(tmp_path / "a.so"),
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("nnc: error: ") and "thumbv7em" in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == []


def test_help_and_missing_arguments(capsys):
    assert main(["--help"]) == 0
    assert "--emit" in capsys.readouterr().out
    assert main([]) == 2
    assert capsys.readouterr().err == "nnc: error: the following arguments are required: model\n"


def test_mlir_puts_big_weights_in_the_side_car(model_file, tmp_path):
    out = tmp_path / "net.mlir"
    assert main([str(model_file), "--emit", "mlir", "-o", str(out), "-O0", "--batch", "3"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["net.mlir", "net.weights.npz"]
    assert "tensor<3x3x8x8xf32>" in out.read_text()


def test_prefix_and_report(model_file, tmp_path, capsys):
    out = tmp_path / "libdet.so"
    assert main([str(model_file), "-O2", "--prefix", "det", "-o", str(out), "--report"]) == 0
    assert nnc_prefixes(out) == ["det"]
    assert "int32_t det_run_with_workspace(" in out.with_suffix(".h").read_text()
    report = capsys.readouterr().out
    assert "nn.conv" in report and "MACs" in report and "6.91 K" in report
    assert "pipeline: specialize-shapes{batch=1}" in report


BAD_OPTIONS = {
    "-O7": (["-O7"], 2, "argument -O: invalid choice: 7"),
    "--emit foo": (["--emit", "foo"], 2, "argument --emit: invalid choice: 'foo'"),
    "--batch 0": (["--batch", "0"], 2, "expected a positive integer, got '0'"),
    "--quant int4": (["--quant", "int4"], 2, "argument --quant: invalid choice: 'int4'"),
    "--target sparc": (["--target", "sparc-unknown"], 1, "unknown target 'sparc-unknown'"),
    "--calib-method": (["--quant", "int8", "--calib-method", "kl"], 2, "invalid choice: 'kl'"),
    "--granularity": (
        ["--quant", "int8", "--granularity", "per-group"],
        1,
        "--granularity per-group needs a weight-only mode",
    ),
    "--prefix": (["--prefix", "my-net"], 1, "'my-net' is not a C identifier"),
    "--passes": (["--passes", "fold-everything"], 1, "unknown pass 'fold-everything'"),
    "--calibration": (["--calibration", "data.npz"], 1, "--calibration is only used with"),
    "--mcpu": (["--mcpu", "cortex-a76+"], 1, "bad feature"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_options_fail_cleanly(model_file, tmp_path, capsys, case):
    args, status, message = BAD_OPTIONS[case]
    assert main([str(model_file), "-o", str(tmp_path / "libnet.so"), *args]) == status
    err = capsys.readouterr().err
    assert err.startswith("nnc: error: ") and message in err
    assert err.count("\n") == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "file not found"),
        ("truncated", "model '"),
        ("corrupt", "model '"),
        ("unknown_op", "unsupported op 'FooBar' (node 'mystery', opset 17)"),
    ],
)
def test_bad_models_fail_cleanly(bad_models, tmp_path, capsys, kind, message):
    out = tmp_path / "libnet.so"
    assert main([str(bad_models[kind]), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nnc: error: ") and message in err
    assert err.count("\n") == 1
    assert os.listdir(tmp_path) == []


def test_missing_output_folders_are_created(model_file, tmp_path):
    assert main([str(model_file), "-o", str(tmp_path / "out" / "sub" / "libnet.so")]) == 0
    assert sorted(os.listdir(tmp_path / "out" / "sub")) == ["libnet.h", "libnet.so"]


def test_failed_compile_creates_no_output_folder(bad_models, tmp_path, capsys):
    out = tmp_path / "out" / "libnet.so"
    assert main([str(bad_models["unknown_op"]), "-o", str(out)]) == 1
    assert not (tmp_path / "out").exists()


def test_unwritable_output_is_a_user_error(model_file, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main([str(model_file), "-o", str(tmp_path / "file" / "libnet.so")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "file").unlink()
    assert main([str(model_file), "-o", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_failure_while_writing_leaves_no_partial_files(model_file, tmp_path, monkeypatch, capsys):
    import nnc.backends.llvm as backend
    from nnc.errors import TargetError

    real = backend.write_artifact

    def fail_on_header(result, path, kind):
        if kind == "header":
            raise TargetError("simulated failure while writing the header")
        return real(result, path, kind)

    monkeypatch.setattr(backend, "write_artifact", fail_on_header)
    assert main([str(model_file), "-o", str(tmp_path / "libnet.so")]) == 1
    assert "simulated failure" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
