"""The ``sdot`` depthwise kernel (``kernels/qdepthwise_dot.py``) cross-compiled for AArch64
and run under qemu-aarch64 (``-cpu max``): bit-exact for stride 1 and 2, u8 and i8 inputs
(the s8 domain flips u8 bytes), residual + relu, masked and overlapping tails; the
no-dotprod build keeps the float kernel. Skipped when the cross toolchain is absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir
from test_aarch64_quant import SYSROOT, _case, _driver
from test_kernels_quant import conv_acc, epilogue_ref, kernel_kwargs

from nnc.backends.llvm.kernels import qdepthwise_dot as qdd
from nnc.backends.llvm.kernels.qconv import emit_qconv
from nnc.backends.llvm.kernels.qisa import select_qisa
from nnc.backends.llvm.targets import optimize_module, parse_target

CC, QEMU = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
pytestmark = pytest.mark.skipif(not (CC and QEMU), reason="no aarch64 cross gcc / qemu")

#: (channels, h, w, stride, x dtype, y dtype, residual)
CASES = [(3, 6, 9, 1, "u8", "u8", True), (2, 7, 11, 2, "i8", "i8", False),
         (2, 5, 3, 1, "u8", "f32", False)]  # fmt: skip


def _cases():
    rng = np.random.default_rng(11)
    for c, h, wd, s, xd, yd, res in CASES:
        x = rng.integers(*((0, 256) if xd == "u8" else (-128, 128)), (1, c, h, wd))
        x = x.astype(np.uint8 if xd == "u8" else np.int8)
        w = rng.integers(-128, 128, (c, 1, 3, 3)).astype(np.int8)
        geo = dict(strides=(s, s), pads=(1, 1, 1, 1), dilations=(1, 1), group=c)
        oh, ow = (h - 1) // s + 1, (wd - 1) // s + 1
        q = _case(rng, xd, yd, c, (1, c, oh, ow), res)
        acc = conv_acc(x, w, geo["strides"], geo["pads"], geo["dilations"], c, q["x_zp"])
        if q["bias"] is not None:
            acc = acc + q["bias"][None, :, None, None]
        yield dict(x_shape=x.shape, w=w, **geo), q, x, epilogue_ref(acc, q, 1)


@pytest.mark.parametrize("mcpu", ["cortex-a76", None])
def test_sdot_depthwise_under_qemu(tmp_path: Path, mcpu):
    target = parse_target("aarch64-linux-gnu", mcpu)
    dot = mcpu is not None
    assert (qdd.lanes(target, select_qisa(target), 1, 9) > 0) == dot
    module = ir.Module()
    module.triple = target.triple
    kernels, files, expected = [], [], []
    for i, (params, q, x, ref) in enumerate(_cases()):
        kfn = emit_qconv(module, f"k{i}", target=target, **params, **kernel_kwargs(q))
        inputs = [x] + ([q["res"]] if q["res"] is not None else [])
        for j, arr in enumerate(inputs):
            files.append(tmp_path / f"k{i}_in{j}.bin")
            files[-1].write_bytes(arr.tobytes())
        files.append(tmp_path / f"k{i}_out.bin")
        kernels.append((f"k{i}", [a.nbytes for a in inputs], ref.nbytes, kfn.scratch_bytes))
        expected.append((files[-1], ref))
    mod = llvm.parse_assembly(str(module))
    mod.verify()
    tm = target.target_machine()
    optimize_module(mod, tm, 3)
    assert ("sdot" in tm.emit_assembly(mod)) == dot
    obj, src, exe = tmp_path / "k.o", tmp_path / "main.c", tmp_path / "run"
    obj.write_bytes(tm.emit_object(mod))
    src.write_text(_driver(kernels))
    subprocess.run([CC, "-std=c11", "-O1", str(src), str(obj), "-o", str(exe)], check=True)
    cmd = [QEMU, "-cpu", "max", "-L", SYSROOT, str(exe), *map(str, files)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stdout + proc.stderr
    for path, ref in expected:
        out = np.frombuffer(path.read_bytes(), dtype=ref.dtype).reshape(ref.shape)
        bad = np.argwhere(out != ref)
        assert bad.size == 0, f"{path.name}: {len(bad)} mismatches, first at {bad[0]}"
