"""Side-by-side latency benchmark: nnc vs onnxruntime, same process, same inputs.

For each model: compile with nnc (-O3, default threads = all cores; compile time
reported), create onnxruntime sessions (all graph optimizations) with
``intra_op_num_threads`` 1 and N, check both engines agree numerically, then for 1 thread
and for N threads (nnc: ``set_num_threads``) time each engine in its own block (warm-up,
then ``--runs`` runs; blocks because both engines' idle workers spin after a run) and
report the median,
GFLOP/s (2 x MACs / time) and the ratio nnc/ORT (< 1.0: nnc is faster). Prints a
Markdown table headed by the machine description (CPU model, cores, ISA features) for
the README. The machine may be shared and noisy: read the ratio, not absolute times.

    .venv/bin/python tools/bench.py                       # default model set, 1 and N threads
    .venv/bin/python tools/bench.py --models resnet18 --runs 50 --threads 1 4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort

import nnc
from nnc.testing import model_zoo

DEFAULT_MODELS = [
    "resnet18",
    "mobilenet_v2",
    "transformer_block",
    "resnet18_cifar",
    "light_resnet50",
    "light_squeezenet",
    "light_inception_v1",
    "light_vgg19",
]
#: ISA features worth naming in the machine line.
_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile",
             "asimd", "asimddp", "sve", "sve2", "i8mm")  # fmt: skip


def machine_description() -> str:
    """CPU model, usable cores and notable ISA features (from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and model in ("", "x86_64"):
                    model = value.strip()
                elif key in ("flags", "features"):
                    flags |= set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    isa = " ".join(f for f in _FEATURES if f in flags) or "-"
    return f"{model}, {cores} cores ({platform.machine()}), ISA: {isa}"


def load_model(name: str) -> onnx.ModelProto:
    """A zoo model by name, or one of the onnx package's light_* models."""
    if name.startswith("light_"):
        for light in model_zoo.light_models():
            if f"light_{light.name}" == name or light.name == name:
                return light.load()
        raise SystemExit(f"bench: unknown light model {name!r}")
    if name not in model_zoo.ZOO:
        raise SystemExit(f"bench: unknown model {name!r}; choose from {sorted(model_zoo.ZOO)}")
    return model_zoo.ZOO[name]()


def ort_session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session with all graph optimizations and ``threads`` threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def block_medians(fns: list[Callable[[], object]], runs: int, warmup: int) -> list[float]:
    """Median wall time (s) of each of ``fns``: ``warmup`` untimed then ``runs`` timed
    calls of one engine, a short pause, then the next engine.

    Blocks, not alternation: both engines' idle workers spin for a while after a run,
    and interleaving two spinning pools on few cores makes each slow the other down.
    """
    medians = []
    for fn in fns:
        time.sleep(0.2)  # let the other engine's workers go to sleep
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return medians


def max_rel_err(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float:
    return max(
        float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30)
        for a, b in zip(ours, theirs, strict=True)
    )


def bench_model(name: str, runs: int, warmup: int, thread_counts: list[int]) -> list[dict]:
    """Compile, check and time one model; one result row per thread count."""
    model = load_model(name)
    feeds = model_zoo.random_inputs(model, seed=0)
    start = time.perf_counter()
    compiled = nnc.compile(model, opt_level=3)
    compile_s = time.perf_counter() - start
    macs = compiled.report.total_macs
    rows = []
    for threads in thread_counts:
        session = ort_session(model, threads)
        got = compiled.set_num_threads(threads)
        err = max_rel_err(compiled.run(feeds), session.run(None, feeds))
        t_nnc, t_ort = block_medians(
            [lambda: compiled.run(feeds), lambda s=session: s.run(None, feeds)], runs, warmup
        )
        rows.append(
            {
                "model": name,
                "threads": threads,
                "nnc_threads": got,
                "compile_s": compile_s,
                "nnc_ms": t_nnc * 1e3,
                "ort_ms": t_ort * 1e3,
                "ratio": t_nnc / t_ort,
                "rel_err": err,
                "nnc_gflops": 2 * macs / t_nnc / 1e9,
                "ort_gflops": 2 * macs / t_ort / 1e9,
            }
        )
    return rows


def print_table(rows: list[dict], runs: int) -> None:
    """A Markdown table (paste into the README)."""
    print(f"\nMachine: {machine_description()}")
    print(f"Median of {runs} runs after warm-up; nnc/ORT < 1 means nnc is faster.\n")
    print(
        "| model | threads | nnc ms | ORT ms | nnc/ORT | nnc GFLOP/s | ORT GFLOP/s "
        "| compile s | max rel err |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['threads']} | {r['nnc_ms']:.2f} | {r['ort_ms']:.2f} | "
            f"{r['ratio']:.2f} | {r['nnc_gflops']:.1f} | {r['ort_gflops']:.1f} | "
            f"{r['compile_s']:.1f} | {r['rel_err']:.1e} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per engine (>= 1)")
    parser.add_argument("--warmup", type=int, default=3)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=sorted({1, cores or 1}),
        help="thread counts to measure (default: 1 and all cores)",
    )
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        for row in bench_model(name, max(args.runs, 1), args.warmup, args.threads):
            print(
                f"{name} x{row['threads']}: nnc {row['nnc_ms']:.2f} ms, ORT {row['ort_ms']:.2f} "
                f"ms, ratio {row['ratio']:.2f}, compile {row['compile_s']:.1f} s",
                file=sys.stderr,
            )
            rows.append(row)
    print_table(rows, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
