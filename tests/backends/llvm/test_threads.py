"""Multi-threaded generated code: same bits as serial code, concurrent runs, cross builds.

``MIN_PARALLEL_WORK`` is lowered to 0 so that the small test models really dispatch
their loops to the pool.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from llvm_testlib import ModelBuilder, mobile_block_model, small_cnn, transformer_head

from nnc.backends.llvm import build, parallel, parse_target, write_artifact
from nnc.backends.llvm.codegen import generate_module
from nnc.backends.llvm.lower import lower_module
from nnc.ir import ops_compute as oc
from nnc.ir import ops_elementwise as oe
from nnc.ir import ops_shape as osh
from nnc.ir.interpret import interpret
from nnc.runtime import load_library

THREADS_DRIVER = Path(__file__).with_name("test_threads.c")


@pytest.fixture(autouse=True)
def _parallel_everything(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)


def data_parallel_model():
    """One op of every data-parallel kernel family on a (2, 8, 12, 12) tensor."""
    g = ModelBuilder(3)
    x = g.add_input("x", (2, 8, 12, 12))
    y = g.insert(oe.TanhOp(x))
    y = g.insert(oe.AddOp(y, g.weight(1, 8, 1, 1)))
    y = g.insert(oe.MulOp(y, g.weight(2, 8, 12, 12)))
    y = g.insert(oc.LRNOp(y, size=3, alpha=1e-3, beta=0.75, bias=1.0))
    p = g.insert(oc.MaxPoolOp(y, kernel=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1)))
    a = g.insert(oc.AvgPoolOp(y, kernel=(2, 2), strides=(2, 2)))
    s = g.insert(osh.SoftmaxOp(p, axis=-1))
    ln = g.insert(oc.LayerNormOp(s, g.constant(np.ones(12, np.float32)), axis=-1, epsilon=1e-5))
    gp = g.insert(oc.GlobalMaxPoolOp(a))
    return g.finish([("ln", ln), ("gp", gp)])


def _run_built(tmp_path: Path, module, threads: int, name: str):
    result = build(module, prefix="net", threads=threads)
    so = write_artifact(result, tmp_path / f"lib{name}.so", "so")
    return load_library(so)


def _check_serial_bits(tmp_path: Path, module, seed: int, atol: float):
    """Build ``module`` serial and with 2 threads; the threaded library must give the
    serial bits (twice), and the serial ones match the interpreter within ``atol``.
    Returns (serial, threaded, inputs, serial outputs)."""
    serial = _run_built(tmp_path, module, 1, "serial")
    threaded = _run_built(tmp_path, module, 2, "threaded")
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(t.shape).astype(np.float32) for t in serial.inputs]
    want = serial.run(xs)
    for got in (threaded.run(xs), threaded.run(xs)):
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(g, w)
    ref = interpret(module, xs)
    for w, r in zip(want, ref, strict=True):
        np.testing.assert_allclose(w, r, rtol=1e-4, atol=atol)
    return serial, threaded, xs, want


@pytest.mark.parametrize(
    "make", [data_parallel_model, small_cnn, transformer_head, mobile_block_model]
)
def test_threads_give_the_serial_bits(tmp_path, make):
    module = make()
    serial, threaded, xs, want = _check_serial_bits(tmp_path, module, 0, 1e-5)
    assert serial.num_threads() == 1 and threaded.num_threads() == 2
    # The runtime setter: 1 thread, then back to the default.
    assert threaded.set_num_threads(1) == 1 and threaded.num_threads() == 1
    np.testing.assert_array_equal(threaded.run(xs)[0], want[0])
    assert threaded.set_num_threads(0) == 2


def test_single_thread_build_has_no_threading_code():
    result = build(data_parallel_model(), threads=1)
    assert "pthread" not in result.llvm_ir and "nnc.parallel_for" not in result.llvm_ir
    threaded = build(data_parallel_model(), threads=2)
    assert "pthread_create" in threaded.llvm_ir


def _c_driver(cc: str, tmp_path: Path, result, prefix: str = "net") -> Path:
    write_artifact(result, tmp_path / f"lib{prefix}.so", "so")
    header = write_artifact(result, tmp_path / f"lib{prefix}.h", "header")
    exe = tmp_path / "threads"
    cmd = [cc, "-std=c99", "-Wall", "-Werror", "-pthread", "-include", str(header)]
    cmd += [f"-DNNC_PREFIX={prefix}", str(THREADS_DRIVER), "-o", str(exe)]
    cmd += [f"-L{tmp_path}", f"-l{prefix}", "-lm", "-Wl,-rpath,$ORIGIN"]
    subprocess.run(cmd, check=True)
    return exe


def test_concurrent_runs_from_c(tmp_path):
    """Two pthreads calling run_with_workspace at once on a 2-thread library."""
    result = build(data_parallel_model(), prefix="net", threads=2)
    exe = _c_driver("cc", tmp_path, result)
    proc = subprocess.run([exe, "2"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK threads 2")


def test_aarch64_threads_under_qemu(tmp_path):
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if cc is None or qemu is None:
        pytest.fail(
            "aarch64-linux-gnu-gcc / qemu-aarch64 missing (gcc-aarch64-linux-gnu qemu-user)"
        )
    target = parse_target("aarch64-linux-gnu")
    result = build(small_cnn(size=20), target=target, prefix="net", threads=0)
    exe = _c_driver(cc, tmp_path, result)
    cmd = [qemu, "-L", "/usr/aarch64-linux-gnu", exe, "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK threads 3")


def test_bare_metal_is_serial():
    target = parse_target("thumbv7em-none-unknown-eabihf")
    gen = generate_module(lower_module(data_parallel_model()), target, "net", threads=4)
    assert "pthread" not in gen.ir_text and "nnc.parallel_for" not in gen.ir_text


def _int8(module, shape, seed: int = 0, quant: str = "int8"):
    """``module`` statically quantized to int8 (min/max ranges of two random inputs; the
    quantization pipeline folds the q/dq pairs between layers)."""
    from nnc.quant.driver import quantize_module

    rng = np.random.default_rng(seed)
    samples = [[rng.standard_normal(shape).astype(np.float32)] for _ in range(2)]
    quantize_module(module, quant, samples if quant == "int8" else None, measure=False)
    module.verify()
    return module


def int8_cnn():
    """Every int8 conv kernel family: implicit-GEMM 3x3 (s1, s2), im2col (C=3 stem, 1x1,
    grouped), depthwise, an int8 max pool and global pool, an int8 Gemm; the input is
    big enough for a parallel quantize."""
    g = ModelBuilder(5)
    x = g.add_input("x", (2, 3, 32, 32))
    y = g.conv(x, 16, 3, act="relu")
    y = g.insert(oc.MaxPoolOp(y, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)))
    y = g.conv(y, 24, 3, act="relu")
    y = g.conv(y, 24, 3, 2, act="relu", group=24)
    e = g.conv(y, 64, 1, act="relu")
    y = g.conv(e, 32, 3, 2, act="relu", group=2)
    y = g.conv(y, 32, 3, residual=y, act="relu")
    y = g.insert(oc.GlobalAvgPoolOp(y))
    y = g.insert(osh.ReshapeOp(y, shape=(2, 32)))
    y = g.dense(y, 10)
    return _int8(g.finish([("y", y)]), (2, 3, 32, 32))


def int8_mlp():
    """int8 Gemms with many rows (row and column tiles with tails)."""
    g = ModelBuilder(6)
    x = g.add_input("x", (37, 40))
    y = g.dense(x, 100, act="relu")
    y = g.dense(y, 50)
    return _int8(g.finish([("y", y)]), (37, 40))


def dynamic_mlp():
    """Dynamically quantized Gemms (run-time activation scale, int8 tiles)."""
    g = ModelBuilder(7)
    x = g.add_input("x", (37, 40))
    y = g.dense(x, 100, act="relu")
    return _int8(g.finish([("y", y)]), (37, 40), quant="int8-dynamic")


@pytest.mark.parametrize(
    ("make", "op"),
    [(int8_cnn, "nn.qconv"), (int8_mlp, "nn.qgemm"), (dynamic_mlp, "nn.wq_gemm")],
)
def test_int8_threads_give_the_serial_bits(tmp_path, make, op):
    module = make()
    assert op in {o.name for o in module.walk()}
    _check_serial_bits(tmp_path, module, 1, 1e-4)
