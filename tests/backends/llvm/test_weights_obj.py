"""Weights in a separate ELF object: every artifact kind still holds them and runs."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from llvm_testlib import C_DRIVER, small_cnn, write_io

from nnc.backends.llvm import build, codegen, parse_target, write_artifact
from nnc.backends.llvm.weights_obj import elf_data_object
from nnc.ir.interpret import interpret
from nnc.runtime import load_library


@pytest.fixture
def external(monkeypatch):
    monkeypatch.setattr(codegen, "EXTERNAL_WEIGHTS_MIN_BYTES", 0)


def _drive(tmp_path, module, result, link_args):
    header = write_artifact(result, tmp_path / "libnet.h", "header")
    exe = tmp_path / "driver"
    cmd = ["cc", "-std=c99", "-include", str(header), "-DNNC_PREFIX=net", str(C_DRIVER)]
    subprocess.run([*cmd, "-o", str(exe), *link_args, "-lm", "-lpthread"], check=True)
    ins, exp = write_io(module, result, tmp_path)
    proc = subprocess.run([exe, ins, exp], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_artifact_has_the_weights(tmp_path, external):
    module = small_cnn()
    result = build(module, prefix="net")
    assert result.weights_object is not None and result.weights_symbol == "net.weights"
    lib = load_library(write_artifact(result, tmp_path / "libnet.so", "so"))
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(lib.run([x])[0], interpret(module, [x])[0], rtol=1e-4, atol=1e-5)
    obj = write_artifact(result, tmp_path / "net.o", "obj")
    _drive(tmp_path, module, result, [str(obj)])
    static = write_artifact(result, tmp_path / "libnet.a", "static")
    _drive(tmp_path, module, result, [str(static)])
    ll = write_artifact(result, tmp_path / "net.ll", "llvm").read_text()
    assert '@"net.weights" = hidden constant' in ll
    asm = write_artifact(result, tmp_path / "net.s", "asm").read_text()
    assert '"net.weights":' in asm and "\t.byte\t" in asm
    nm = subprocess.run(["nm", "-D", "--defined-only", tmp_path / "libnet.so"], text=True,
                        capture_output=True, check=True).stdout  # fmt: skip
    assert "weights" not in nm  # hidden: not exported


@pytest.mark.parametrize("target", ["aarch64-linux-gnu", "armv7-linux-gnueabihf"])
def test_cross_objects_link(tmp_path, external, target):
    t = parse_target(target)
    result = build(small_cnn(), target=t, prefix="net")
    write_artifact(result, tmp_path / "libnet.so", "so")
    write_artifact(result, tmp_path / "net.o", "obj")
    head = result.weights_object[:20]
    assert head[:6] == result.object_bytes[:6] and head[18:20] == result.object_bytes[18:20]


def test_elf_object_rejects_non_elf():
    with pytest.raises(ValueError):
        elf_data_object(b"MZ" + bytes(100), "x", b"abc")
