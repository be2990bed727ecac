"""ResNet-18 (224x224, from the model zoo's ONNX) cross-compiled for aarch64-linux-gnu,
linked by the cross gcc against the C ABI test driver and run under qemu-aarch64; its
output must match onnxruntime's on the host within 1e-4 (relative to max |output|).

Slow (a few tens of seconds under qemu): ``scripts/test.sh -m slow``. The fast default
run covers the same path on a small CNN (tests/backends/llvm/test_aarch64.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnc.backends.llvm import write_artifact
from nnc.compiler import compile_model
from nnc.testing import model_zoo
from nnc.testing.oracle import run_onnxruntime

C_DRIVER = Path(__file__).parents[1] / "backends" / "llvm" / "test_c_abi.c"
SYSROOT = "/usr/aarch64-linux-gnu"


@pytest.mark.slow
def test_resnet18_aarch64_under_qemu_matches_onnxruntime(tmp_path: Path):
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if cc is None or qemu is None:  # a missing toolchain is a broken machine, not a pass
        pytest.fail("aarch64-linux-gnu-gcc / qemu-aarch64 missing: run scripts/setup.sh")
    model = model_zoo.resnet18()
    feeds = model_zoo.random_inputs(model, seed=3)
    expected = run_onnxruntime(model, feeds)
    compiled = compile_model(model, opt_level=3, target="aarch64-linux-gnu", prefix="net")
    write_artifact(compiled.build, tmp_path / "libnet.so", "so")
    header = write_artifact(compiled.build, tmp_path / "libnet.h", "header")
    exe = tmp_path / "driver"
    subprocess.run(
        [cc, "-std=c99", "-O2", "-include", str(header), "-DNNC_PREFIX=net", str(C_DRIVER)]
        + ["-o", str(exe), f"-L{tmp_path}", "-lnet", "-lm", "-Wl,-rpath,$ORIGIN"],
        check=True,
    )
    ins, exp = tmp_path / "inputs.bin", tmp_path / "expected.bin"
    ins.write_bytes(b"".join(np.asarray(x, "<f4").tobytes() for x in feeds.values()))
    exp.write_bytes(b"".join(np.asarray(e, "<f4").tobytes() for e in expected))
    proc = subprocess.run(
        [qemu, "-cpu", "cortex-a57", "-L", SYSROOT, str(exe), str(ins), str(exp), "1e-4"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(proc.stdout, proc.stderr, file=sys.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK")
