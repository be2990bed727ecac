"""Side-by-side latency benchmark: nnc vs onnxruntime, same process, same inputs.

For each model: compile with nnc (-O3), create an onnxruntime session (all graph
optimizations), check both agree numerically, then time each engine alternately after a
warm-up and report the median of ``--runs`` runs, GFLOP/s (2 x MACs / time) and the
ratio nnc/ORT (< 1.0 means nnc is faster). The machine is shared and noisy: read the
ratio, not the absolute times.

    .venv/bin/python tools/bench.py                    # default model set, 1 thread
    .venv/bin/python tools/bench.py --models resnet18 mobilenet_v2 --runs 50
"""

from __future__ import annotations

import argparse
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


def median_time(fn: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall time of ``fn`` in seconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_model(name: str, runs: int, warmup: int, threads: int) -> dict:
    """Compile, check, and time one model; returns a result row."""
    model = load_model(name)
    feeds = model_zoo.random_inputs(model, seed=0)
    start = time.perf_counter()
    compiled = nnc.compile(model, opt_level=3)
    compile_s = time.perf_counter() - start
    session = ort_session(model, threads)
    ours = compiled.run(feeds)
    theirs = session.run(None, feeds)
    err = max(
        float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30)
        for a, b in zip(ours, theirs, strict=True)
    )
    t_nnc = median_time(lambda: compiled.run(feeds), runs, warmup)
    t_ort = median_time(lambda: session.run(None, feeds), runs, warmup)
    macs = compiled.report.total_macs if hasattr(compiled.report, "total_macs") else 0
    return {
        "model": name,
        "compile_s": compile_s,
        "nnc_ms": t_nnc * 1e3,
        "ort_ms": t_ort * 1e3,
        "ratio": t_nnc / t_ort,
        "rel_err": err,
        "nnc_gflops": 2 * macs / t_nnc / 1e9,
        "ort_gflops": 2 * macs / t_ort / 1e9,
    }


def print_table(rows: list[dict], threads: int) -> None:
    """A Markdown table (paste into the README)."""
    print(
        f"\n| model | nnc ms | ORT ms | nnc/ORT | nnc GFLOP/s | ORT GFLOP/s | compile s |"
        f" max rel err |  ({threads} thread{'s' if threads > 1 else ''})"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['nnc_ms']:.2f} | {r['ort_ms']:.2f} | {r['ratio']:.2f} | "
            f"{r['nnc_gflops']:.1f} | {r['ort_gflops']:.1f} | {r['compile_s']:.1f} | "
            f"{r['rel_err']:.1e} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        row = bench_model(name, args.runs, args.warmup, args.threads)
        print(
            f"{name}: nnc {row['nnc_ms']:.2f} ms, ORT {row['ort_ms']:.2f} ms, "
            f"ratio {row['ratio']:.2f}",
            file=sys.stderr,
        )
        rows.append(row)
    print_table(rows, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
