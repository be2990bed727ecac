"""int8 kernels cross-compiled for AArch64 and run under qemu-aarch64: the NEON widening
kernel on ``-cpu cortex-a57`` (no dotprod), the ``sdot`` kernel on ``-cpu max``, both
bit-exact; the dotprod build dies with SIGILL on cortex-a57 (gating is real)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir
from test_kernels_quant import NP, conv_acc, epilogue_ref, kernel_kwargs

from nnc.backends.llvm.kernels.qconv import emit_qconv
from nnc.backends.llvm.kernels.qgemm import emit_qgemm
from nnc.backends.llvm.kernels.qisa import select_qisa
from nnc.backends.llvm.targets import optimize_module, parse_target

SYSROOT = "/usr/aarch64-linux-gnu"


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not installed (Debian: gcc-aarch64-linux-gnu qemu-user)")
    return path


def _case(rng, x_dtype: str, y_dtype: str, m: int, out_shape, res: bool) -> dict:
    lo, hi = (0, 255) if x_dtype == "u8" else (-128, 127)
    q = dict(
        x_dtype=x_dtype, y_dtype=y_dtype, x_zp=int(rng.integers(lo, hi + 1)), x_scale=0.03,
        w_scale=rng.uniform(0.002, 0.02, m).astype(np.float32), act="relu",
        lo=0.0, hi=0.0, fbias=None,
        y_scale=0.25, y_zp=-5 if y_dtype == "i8" else 7, bias=None, res=None, r_zp=0,
        r_scale=0.0, flavour="",
    )  # fmt: skip
    if y_dtype == "f32":
        q.update(y_scale=1.0, y_zp=0, fbias=rng.standard_normal(m).astype(np.float32))
    else:
        q["bias"] = rng.integers(-3000, 3000, m).astype(np.int32)
    if res:
        q.update(r_dtype="u8", r_zp=100, r_scale=0.2,
                 res=rng.integers(0, 256, out_shape).astype(np.uint8))  # fmt: skip
    return q


def _cases():
    """(kernel emitter, params, q, x, reference) for a conv, a depthwise conv and a gemm."""
    rng = np.random.default_rng(3)
    out = []
    x = rng.integers(0, 256, (1, 6, 7, 8)).astype(np.uint8)
    w = rng.integers(-128, 128, (10, 6, 3, 3)).astype(np.int8)
    geo = dict(strides=(1, 2), pads=(1, 1, 1, 0), dilations=(1, 1), group=1)
    q = _case(rng, "u8", "u8", 10, (1, 10, 7, 4), True)
    acc = conv_acc(x, w, geo["strides"], geo["pads"], geo["dilations"], 1, q["x_zp"])
    ref = epilogue_ref(acc + q["bias"][None, :, None, None], q, 1)
    out.append((emit_qconv, dict(x_shape=x.shape, w=w, **geo), q, x, ref))
    x = rng.integers(-128, 128, (1, 4, 6, 5)).astype(np.int8)
    w = rng.integers(-128, 128, (4, 1, 3, 3)).astype(np.int8)
    geo = dict(strides=(2, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=4)
    q = _case(rng, "i8", "i8", 4, None, False)
    acc = conv_acc(x, w, geo["strides"], geo["pads"], geo["dilations"], 4, q["x_zp"])
    ref = epilogue_ref(acc + q["bias"][None, :, None, None], q, 1)
    out.append((emit_qconv, dict(x_shape=x.shape, w=w, **geo), q, x, ref))
    x = rng.integers(0, 256, (5, 23)).astype(np.uint8)
    w = rng.integers(-128, 128, (19, 23)).astype(np.int8)
    q = _case(rng, "u8", "f32", 19, None, False)
    ref = epilogue_ref((x.astype(np.int64) - q["x_zp"]) @ w.astype(np.int64).T, q, 1)
    out.append((emit_qgemm, dict(a_shape=x.shape, w=w), q, x, ref))
    return out


def _driver(kernels: list[tuple[str, list[int], int, int]]) -> str:
    """C main: per kernel read its input files, call it, write its output file."""
    lines = ["#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>"]
    for name, ins, _, _ in kernels:
        lines.append(f"void {name}({', '.join(['void *'] * (len(ins) + 2))});")
    lines += [
        "static void *buf(size_t n) { void *p = aligned_alloc(64, (n + 127) / 64 * 64);"
        " memset(p, 0xA5, (n + 127) / 64 * 64); return p; }",
        "static void *slurp(const char *path, size_t n) { void *p = buf(n);"
        ' FILE *f = fopen(path, "rb"); if (!f || fread(p, 1, n, f) != n) exit(2);'
        " fclose(f); return p; }",
        "int main(int argc, char **argv) { int a = 1; (void)argc;",
    ]
    for name, ins, out_bytes, scratch in kernels:
        args = []
        lines.append("  {")
        for nbytes in ins:
            lines.append(f"  void *in{len(args)} = slurp(argv[a++], {nbytes});")
            args.append(f"in{len(args)}")
        lines.append(f"  void *out = buf({out_bytes}), *scr = buf({scratch});")
        lines.append(f"  {name}({', '.join([*args, 'out', 'scr'])});")
        lines.append(f"  FILE *f = fopen(argv[a++], \"wb\"); fwrite(out, 1, {out_bytes}, f);"
                     " fclose(f); }")  # fmt: skip
    lines.append('  puts("OK"); return 0; }')
    return "\n".join(lines) + "\n"


def _build(tmp: Path, mcpu: str | None):
    """Executable running every case, its file arguments and the assembly."""
    target = parse_target("aarch64-linux-gnu", mcpu)
    module = ir.Module()
    module.triple = target.triple
    kernels, files, expected = [], [], []
    for i, (emit, params, q, x, ref) in enumerate(_cases()):
        name = f"k{i}"
        kfn = emit(module, name, target=target, **params, **kernel_kwargs(q))
        inputs = [x] + ([q["res"]] if q["res"] is not None else [])
        for j, arr in enumerate(inputs):
            files.append(tmp / f"{name}_in{j}.bin")
            files[-1].write_bytes(arr.tobytes())
        files.append(tmp / f"{name}_out.bin")
        kernels.append((name, [a.nbytes for a in inputs], ref.nbytes, kfn.scratch_bytes))
        expected.append((files[-1], ref))
    mod = llvm.parse_assembly(str(module))
    mod.verify()
    tm = target.target_machine()
    optimize_module(mod, tm, 3)
    obj, src, exe = tmp / "k.o", tmp / "main.c", tmp / "run"
    obj.write_bytes(tm.emit_object(mod))
    src.write_text(_driver(kernels))
    cc = _require("aarch64-linux-gnu-gcc")
    subprocess.run([cc, "-std=c11", "-O1", str(src), str(obj), "-o", str(exe)], check=True)
    return exe, files, expected, tm.emit_assembly(mod)


def _qemu(cpu: str, exe: Path, files: list[Path]) -> subprocess.CompletedProcess:
    qemu = _require("qemu-aarch64")
    cmd = [qemu, "-cpu", cpu, "-L", SYSROOT, str(exe), *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("mcpu", "qemu_cpu", "flavour"), [(None, "cortex-a57", "widen"), ("cortex-a76", "max", "sdot")]
)
def test_int8_kernels_under_qemu(tmp_path: Path, mcpu, qemu_cpu, flavour):
    assert select_qisa(parse_target("aarch64-linux-gnu", mcpu)).name == flavour
    exe, files, expected, asm = _build(tmp_path, mcpu)
    if flavour == "sdot":
        assert "sdot" in asm
    else:
        assert "sdot" not in asm and "smlal" in asm
    proc = _qemu(qemu_cpu, exe, files)
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stdout + proc.stderr
    for path, ref in expected:
        out = np.frombuffer(path.read_bytes(), dtype=ref.dtype).reshape(ref.shape)
        bad = np.argwhere(out != ref)
        assert bad.size == 0, f"{path.name}: {len(bad)} mismatches, first at {bad[0]}"
    if flavour == "sdot":  # the same binary on a CPU without dotprod: illegal instruction
        proc = _qemu("cortex-a57", exe, files)
        assert proc.returncode in (-signal.SIGILL, 128 + signal.SIGILL), proc.returncode


assert NP  # re-exported helper used by the cases above
