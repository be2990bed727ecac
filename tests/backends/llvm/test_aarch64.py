"""Cross build for aarch64-linux-gnu, linked with the cross gcc, run under qemu-aarch64."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from llvm_testlib import C_DRIVER, mobile_block_model, small_cnn, write_io

from nnc.backends.llvm import build, parse_target, write_artifact

SYSROOT = "/usr/aarch64-linux-gnu"


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:  # a missing toolchain is a broken test machine, not a pass
        pytest.fail(f"{tool} not installed (Debian: gcc-aarch64-linux-gnu qemu-user)")
    return path


@pytest.mark.parametrize("mcpu", [None, "cortex-a76+dotprod"])
def test_small_cnn_under_qemu(tmp_path: Path, mcpu):
    _run_under_qemu(tmp_path, small_cnn(size=20), mcpu)


def test_mobile_block_under_qemu(tmp_path: Path):
    """Depthwise / pointwise / row-band conv, vector pooling and concat on NEON."""
    _run_under_qemu(tmp_path, mobile_block_model(), None)


def _run_under_qemu(tmp_path: Path, module, mcpu) -> None:
    cc, qemu = _require("aarch64-linux-gnu-gcc"), _require("qemu-aarch64")
    result = build(module, target=parse_target("aarch64-linux-gnu", mcpu), prefix="net")
    assert "fmla" in result.asm  # NEON fused multiply-add in the kernels
    write_artifact(result, tmp_path / "libnet.so", "so")
    header = write_artifact(result, tmp_path / "libnet.h", "header")
    exe = tmp_path / "driver"
    subprocess.run(
        [
            cc,
            "-std=c99",
            "-Wall",
            "-Werror",
            "-include",
            str(header),
            "-DNNC_PREFIX=net",
            str(C_DRIVER),
            "-o",
            str(exe),
            f"-L{tmp_path}",
            "-lnet",
            "-lm",
            "-Wl,-rpath,$ORIGIN",
        ],
        check=True,
    )
    ins, exp = write_io(module, result, tmp_path)
    cpu = ["-cpu", "max"] if mcpu else ["-cpu", "cortex-a57"]
    proc = subprocess.run(
        [qemu, *cpu, "-L", SYSROOT, exe, ins, exp], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK")
