"""Kernel micro-benchmark: int8 qgemm/qconv (GOPS) vs the fp32 gemm/conv kernels (GFLOPS).

Each kernel is emitted alone, JIT-compiled for the host (or for ``--cpu``/``--features``
to time a fallback flavour, e.g. ``--cpu skylake-avx512`` = no VNNI) and timed as the
median of ``--runs`` calls after a warm-up. GOPS counts 2 ops per multiply-accumulate for
both, so the ratio column is the int8 speed-up. Single thread; the machine is shared and
noisy, read the ratios.

    .venv/bin/python tools/bench_kernels.py
    .venv/bin/python tools/bench_kernels.py --cpu haswell --runs 5
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from nnc.backends.llvm.kernels.conv2d import emit_conv2d
from nnc.backends.llvm.kernels.gemm import emit_gemm
from nnc.backends.llvm.kernels.qconv import emit_qconv
from nnc.backends.llvm.kernels.qgemm import emit_qgemm
from nnc.backends.llvm.kernels.qisa import select_qisa
from nnc.backends.llvm.targets import Target, host_target, optimize_module

GEMMS = [(64, 64, 576), (784, 128, 1152), (3136, 64, 576), (196, 256, 2304), (49, 512, 4608),
         (256, 512, 512)]  # fmt: skip
CONVS = [  # (C, H, M, k, stride, group): ResNet-18 and MobileNetV2 shapes
    (64, 56, 64, 3, 1, 1), (128, 28, 128, 3, 1, 1), (256, 14, 256, 3, 1, 1),
    (512, 7, 512, 3, 1, 1), (64, 56, 128, 1, 2, 1), (32, 112, 16, 1, 1, 1),
    (144, 56, 24, 1, 1, 1), (144, 56, 144, 3, 1, 144), (384, 14, 384, 3, 1, 384),
]  # fmt: skip


class Compiled:
    """One kernel compiled for ``target`` and callable with raw pointers."""

    def __init__(self, module: ir.Module, target: Target, nargs: int):
        tm = target.target_machine(jit=True)
        module.triple = target.triple
        mod = llvm.parse_assembly(str(module))
        optimize_module(mod, tm, 3)
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * nargs))
        self.fn = proto(self.engine.get_function_address("k"))


def _time(comp: Compiled, ptrs, runs: int) -> float:
    fn = comp.fn
    fn(*ptrs)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(*ptrs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ptrs(arrays, scratch: int):
    keep = list(arrays) + ([np.zeros(scratch + 64, np.uint8)] if scratch else [])
    return keep, [a.ctypes.data for a in keep]


def bench_gemm(m, n, k, target, runs):
    rng = np.random.default_rng(0)
    mod = ir.Module()
    kf = emit_gemm(mod, "k", a_shape=(m, k), b_shape=(n, k), trans_a=False, trans_b=True,
                   alpha=1.0, beta=1.0)  # fmt: skip
    arrs = [rng.standard_normal((m, k), np.float32), rng.standard_normal((n, k), np.float32),
            np.zeros((m, n), np.float32)]  # fmt: skip
    keep, ptrs = _ptrs(arrs, kf.scratch_bytes)
    t32 = _time(Compiled(mod, host_target(), len(ptrs)), ptrs, runs)
    qmod = ir.Module()
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    kq = emit_qgemm(qmod, "k", a_shape=(m, k), w=w, w_scale=np.full(n, 0.01), x_scale=0.02,
                    x_zp=128, bias=np.zeros(n, np.int32), y_scale=1.0, y_zp=0,
                    activation="relu", target=target)  # fmt: skip
    qa = [rng.integers(0, 256, (m, k), dtype=np.uint8), np.zeros((m, n), np.uint8)]
    qkeep, qptrs = _ptrs(qa, kq.scratch_bytes)
    t8 = _time(Compiled(qmod, target, len(qptrs)), qptrs, runs)
    return 2.0 * m * n * k, t32, t8


def bench_conv(c, h, m, k, s, grp, target, runs):
    rng = np.random.default_rng(0)
    p = k // 2
    geo = dict(strides=(s, s), pads=(p, p, p, p), dilations=(1, 1), group=grp)
    mod = ir.Module()
    kf = emit_conv2d(mod, "k", x_shape=(1, c, h, h), w_shape=(m, c // grp, k, k), has_bias=True,
                     has_residual=False, activation="relu", act_alpha=0.0, act_beta=0.0,
                     **geo)  # fmt: skip
    oh = (h + 2 * p - k) // s + 1
    arrs = [rng.standard_normal((1, c, h, h), np.float32),
            rng.standard_normal((m, c // grp, k, k), np.float32), np.zeros(m, np.float32),
            np.zeros((1, m, oh, oh), np.float32)]  # fmt: skip
    keep, ptrs = _ptrs(arrs, kf.scratch_bytes)
    t32 = _time(Compiled(mod, host_target(), len(ptrs)), ptrs, runs)
    qmod = ir.Module()
    w = rng.integers(-127, 128, (m, c // grp, k, k), dtype=np.int8)
    kq = emit_qconv(qmod, "k", x_shape=(1, c, h, h), w=w, w_scale=np.full(m, 0.01),
                    x_scale=0.02, x_zp=0, bias=np.zeros(m, np.int32), activation="relu",
                    target=target, **geo)  # fmt: skip
    qa = [rng.integers(0, 256, (1, c, h, h), dtype=np.uint8), np.zeros((1, m, oh, oh), np.uint8)]
    qkeep, qptrs = _ptrs(qa, kq.scratch_bytes)
    t8 = _time(Compiled(qmod, target, len(qptrs)), qptrs, runs)
    return 2.0 * m * (c // grp) * k * k * oh * oh, t32, t8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", default=None, help="int8 target CPU (default: host)")
    ap.add_argument("--features", default="", help="int8 target features, e.g. -avx512vnni")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", choices=["gemm", "conv"], default=None, help="one table only")
    args = ap.parse_args()
    host = host_target()
    target = host
    if args.cpu or args.features:
        target = Target(
            host.triple,
            args.cpu or host.cpu,
            args.features if args.cpu else f"{host.features},{args.features}",
        )
    print(f"int8 flavour: {select_qisa(target).name}  (target cpu {target.cpu})")
    print(f"{'kernel':34s} {'fp32 GFLOPS':>11s} {'int8 GOPS':>10s} {'x':>6s}")
    for m, n, k in GEMMS if args.only != "conv" else []:
        ops, t32, t8 = bench_gemm(m, n, k, target, args.runs)
        label = f"gemm M={m} N={n} K={k}"
        print(f"{label:34s} {ops / t32 / 1e9:11.1f} {ops / t8 / 1e9:10.1f} {t32 / t8:6.2f}")
    for c, h, m, k, s, grp in CONVS if args.only != "gemm" else []:
        ops, t32, t8 = bench_conv(c, h, m, k, s, grp, target, args.runs)
        label = f"conv C={c} H={h} M={m} k={k} s={s}" + (f" g={grp}" if grp > 1 else "")
        print(f"{label:34s} {ops / t32 / 1e9:11.1f} {ops / t8 / 1e9:10.1f} {t32 / t8:6.2f}")


if __name__ == "__main__":
    main()
