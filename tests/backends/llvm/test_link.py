"""Artifacts: every kind, atomic writes, cross objects, missing toolchains."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest
from llvm_testlib import small_cnn

from nnc.backends.llvm import ARTIFACT_KINDS, build, parse_target, write_artifact
from nnc.errors import InvalidOptionError, TargetError


@pytest.fixture(scope="module")
def host_build():
    return build(small_cnn(), prefix="cnn")


def test_every_artifact_kind(host_build, tmp_path):
    names = {
        "so": "libcnn.so",
        "obj": "cnn.o",
        "static": "libcnn.a",
        "asm": "cnn.s",
        "llvm": "cnn.ll",
        "header": "cnn.h",
    }
    assert set(names) == set(ARTIFACT_KINDS)
    for kind, name in names.items():
        path = write_artifact(host_build, tmp_path / name, kind)
        assert path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names.values())  # no temps
    assert (tmp_path / "cnn.o").read_bytes() == host_build.object_bytes
    assert "define" in (tmp_path / "cnn.ll").read_text()
    nm = subprocess.run(
        ["nm", "-g", "--defined-only", tmp_path / "libcnn.a"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    exported = sorted(line.split()[-1] for line in nm.splitlines() if " T " in line)
    assert exported == sorted(
        f"cnn_{n}"
        for n in (
            "run",
            "run_with_workspace",
            "workspace_size",
            "num_inputs",
            "num_outputs",
            "input_name",
            "output_name",
            "input_rank",
            "output_rank",
            "input_shape",
            "output_shape",
            "input_dtype",
            "output_dtype",
            "set_num_threads",
            "num_threads",
        )
    )


def test_header_compiles_as_c_and_cxx(host_build, tmp_path):
    h = write_artifact(host_build, tmp_path / "cnn.h", "header")
    for lang in ("c", "c++"):
        subprocess.run(["cc", "-x", lang, "-fsyntax-only", "-Wall", "-Werror", str(h)], check=True)


def test_failed_write_leaves_nothing(host_build, tmp_path):
    broken = dataclasses.replace(host_build.target, cc="nnc-no-such-compiler", package="gcc-x")
    result = dataclasses.replace(host_build, target=broken)
    with pytest.raises(TargetError, match="apt-get install gcc-x"):
        write_artifact(result, tmp_path / "lib.so", "so")
    assert list(tmp_path.iterdir()) == []


def test_bad_kind_and_missing_folder(host_build, tmp_path):
    with pytest.raises(InvalidOptionError):
        write_artifact(host_build, tmp_path / "x", "exe")
    with pytest.raises(InvalidOptionError):
        write_artifact(host_build, tmp_path / "missing" / "x.o", "obj")


def test_cortex_m_object_only(tmp_path):
    target = parse_target("thumbv7em-none-unknown-eabihf", None)
    result = build(small_cnn(), target=target)  # compiled in a child process
    assert result.object_bytes[:4] == b"\x7fELF"
    write_artifact(result, tmp_path / "m.o", "obj")
    with pytest.raises(TargetError, match="bare-metal"):
        write_artifact(result, tmp_path / "m.so", "so")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.o"]
    attrs = subprocess.run(
        ["readelf", "-A", tmp_path / "m.o"], capture_output=True, text=True
    ).stdout
    assert "VFP registers" in attrs  # hard-float calling convention
    assert "vfma.f32" in result.asm or "vmla.f32" in result.asm or "vfma" in result.asm


def test_armv7_object_is_hard_float(tmp_path):
    result = build(small_cnn(), target=parse_target("armv7-linux-gnueabihf", None))
    write_artifact(result, tmp_path / "a.o", "obj")
    attrs = subprocess.run(
        ["readelf", "-A", tmp_path / "a.o"], capture_output=True, text=True
    ).stdout
    assert "VFP registers" in attrs and "NEON" in attrs


def test_bad_prefix_and_opt_level():
    with pytest.raises(InvalidOptionError):
        build(small_cnn(), prefix="1abc")
    with pytest.raises(InvalidOptionError):
        build(small_cnn(), opt_level=4)


def test_isolated_compile_failure_is_a_target_error():
    from nnc.backends.llvm.link import compile_ir

    with pytest.raises(TargetError, match="LLVM failed compiling"):
        compile_ir("this is not LLVM IR", parse_target("thumbv7em-none-unknown-eabihf", None))
