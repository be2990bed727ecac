"""Per-model compile statistics: compile time, run time, planned workspace vs intermediates.

For each model: ``nnc.compile`` at -O3 (wall time), the median run time over ``--runs``
runs after a warm-up, the planned peak workspace, the sum of all intermediate tensors, the
kernels' scratch buffers, the weights and the kernel count. Prints a Markdown table.

    .venv/bin/python tools/compile_stats.py
    .venv/bin/python tools/compile_stats.py --models resnet18 light_resnet50 --runs 10
"""

from __future__ import annotations

import argparse
import sys
import time

from _bench_common import block_medians, load_model

import nnc
from nnc.testing import model_zoo

DEFAULT_MODELS = [
    "mlp",
    "lenet",
    "resnet18",
    "resnet18_cifar",
    "mobilenet_v2",
    "transformer_block",
    "light_resnet50",
    "light_squeezenet",
    "light_inception_v1",
    "light_densenet121",
    "light_shufflenet",
    "light_zfnet512",
    "light_bvlc_alexnet",
    "light_vgg19",
]


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def stats_row(name: str, runs: int) -> str:
    """One Markdown table row for model ``name``."""
    model = load_model(name)
    feeds = model_zoo.random_inputs(model, seed=0)
    start = time.perf_counter()
    compiled = nnc.compile(model, opt_level=3, threads=1)
    compile_s = time.perf_counter() - start
    run_ms = block_medians([lambda: compiled.run(feeds)], runs, warmup=2)[0] * 1e3
    r = compiled.report
    return (
        f"| {name} | {compile_s:.1f} | {run_ms:.2f} | {mib(r.workspace_bytes)} | "
        f"{mib(r.intermediate_bytes)} | {mib(r.scratch_bytes)} | "
        f"{mib(r.total_weight_bytes)} | {r.kernel_count} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    print(
        "| model | compile s | run ms | workspace MiB | intermediates MiB | scratch MiB "
        "| weights MiB | kernels |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        print(stats_row(name, args.runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
