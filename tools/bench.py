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

Two more modes (issue #4 / #5), each printing its own Markdown tables:

    .venv/bin/python tools/bench.py --quant int8 --runs 20     # nnc int8 vs fp32 vs ORT QDQ
    .venv/bin/python tools/bench.py --compress --runs 20       # every technique vs -O3
    .venv/bin/python tools/bench.py --compress 'prune=0.9,sparse' --models mobilenet_v2

``--quant`` details: ``_bench_quant.py``; ``--compress`` details: ``_bench_compress.py``.
"""

from __future__ import annotations

import argparse
import sys
import time

from _bench_common import (
    all_cores,
    block_medians,
    load_model,
    load_now,
    machine_description,
    max_rel_err,
    ort_session,
    timing_note,
)

import nnc
from nnc.compress.spec import parse_compress
from nnc.errors import NNCError
from nnc.testing import model_zoo

__all__ = ["block_medians", "load_model", "machine_description", "max_rel_err", "ort_session"]

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


def bench_model(
    name: str, runs: int, warmup: int, thread_counts: list[int], rounds: int = 1
) -> list[dict]:
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
            [lambda: compiled.run(feeds), lambda s=session: s.run(None, feeds)],
            runs,
            warmup,
            rounds,
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
                "load": load_now(),
            }
        )
    return rows


def print_table(rows: list[dict], runs: int, rounds: int = 1) -> None:
    """A Markdown table (paste into the README)."""
    print(f"\nMachine: {machine_description()}")
    print(timing_note(runs, rounds, [r["load"] for r in rows]))
    print("nnc/ORT < 1 means nnc is faster.\n")
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


QUANT_MODELS = ["resnet18", "mobilenet_v2", "transformer_block"]
COMPRESS_MODELS = ["resnet18", "mobilenet_v2"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="default: depends on the mode")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per engine (>= 1)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="split the runs over this many passes over the engines (shared machines)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        help="thread counts to measure (default: 1 and all cores; --compress: 1)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quant", choices=["int8"], help="int8 vs fp32 vs onnxruntime QDQ int8")
    mode.add_argument(
        "--compress",
        nargs="*",
        metavar="SPEC",
        help="compression techniques vs the -O3 build (no SPEC: the default set)",
    )
    parser.add_argument("--calib-samples", type=int, default=16, help="--quant calibration")
    parser.add_argument("--eval-samples", type=int, default=8, help="--quant accuracy inputs")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.rounds < 1 or args.calib_samples < 1 or args.eval_samples < 1:
        parser.error("--runs, --rounds, --calib-samples and --eval-samples must be >= 1")
    if args.threads is None:
        args.threads = [1] if args.compress is not None else sorted({1, all_cores()})
    if args.models is None:
        args.models = (
            QUANT_MODELS
            if args.quant
            else COMPRESS_MODELS
            if args.compress is not None
            else DEFAULT_MODELS
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except NNCError as err:  # a bad --compress spec, an unsupported model...
        print(f"bench: error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """The selected mode on the parsed ``args``; prints the tables."""
    if args.quant:
        from _bench_quant import bench_quant_model, quant_tables

        rows, infos = [], []
        for name in args.models:
            model_rows, info = bench_quant_model(name, load_model(name), args)
            rows += model_rows
            infos.append(info)
        print("\n" + "\n".join(quant_tables(rows, infos, args)))
        return 0
    if args.compress is not None:
        from _bench_compress import TECHNIQUES, bench_compress_model, compress_table

        techniques = TECHNIQUES
        if args.compress:
            for spec in args.compress:
                parse_compress(spec)  # every spec error before the first compile
            techniques = [TECHNIQUES[0]] + [(spec, spec) for spec in args.compress]
        rows = []
        for name in args.models:
            rows += bench_compress_model(name, load_model(name), techniques, args)
        print("\n" + "\n".join(compress_table(rows, args)))
        return 0
    rows = []
    for name in args.models:
        for row in bench_model(name, args.runs, args.warmup, args.threads, args.rounds):
            print(
                f"{name} x{row['threads']}: nnc {row['nnc_ms']:.2f} ms, ORT {row['ort_ms']:.2f} "
                f"ms, ratio {row['ratio']:.2f}, compile {row['compile_s']:.1f} s",
                file=sys.stderr,
            )
            rows.append(row)
    print_table(rows, args.runs, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
