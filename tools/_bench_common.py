"""Shared benchmark helpers: machine line, model loading, ORT sessions, block timing,
error measures and Markdown tables. Used by ``bench.py`` (fp32, ``--quant``,
``--compress``) and ``compile_stats.py``; never imported by the nnc package."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from nnc.testing import model_zoo

#: ISA features worth naming in the machine line.
_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile",
             "asimd", "asimddp", "sve", "sve2", "i8mm")  # fmt: skip


def all_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    isa = " ".join(f for f in _FEATURES if f in flags) or "-"
    return f"{model}, {all_cores()} cores ({platform.machine()}), ISA: {isa}"


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


def ort_session(model: onnx.ModelProto | bytes, threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session with all graph optimizations and ``threads`` threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def block_medians(
    fns: list[Callable[[], object]], runs: int, warmup: int, rounds: int = 1
) -> list[float]:
    """Median wall time (s) of each of ``fns``: ``warmup`` untimed then timed calls of
    one engine, a short pause, then the next engine.

    Blocks, not alternation: both engines' idle workers spin for a while after a run,
    and interleaving two spinning pools on few cores makes each slow the other down.
    ``rounds`` > 1 splits the ``runs`` over that many passes over the engines (order
    reversed every other pass), so load from other processes on a shared machine falls
    on every engine alike; the median is over all of an engine's runs.
    """
    rounds = max(1, min(rounds, runs))
    times: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        order = list(range(len(fns)))[:: -1 if r % 2 else 1]
        per_round = runs // rounds + (r < runs % rounds)
        for i in order:
            time.sleep(0.2)  # let the other engine's workers go to sleep
            for _ in range(warmup):
                fns[i]()
            for _ in range(per_round):
                start = time.perf_counter()
                fns[i]()
                times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def load_now() -> float:
    """The 1-minute load average (nan where unknown)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")


def timing_note(runs: int, rounds: int, loads: Sequence[float]) -> str:
    """One line: how times were taken, and the machine load while they were."""
    how = f"Median of {runs} runs" + (f" in {rounds} rounds" if rounds > 1 else "")
    load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    return f"{how} after warm-up; 1-min load average while timing {load} on {all_cores()} cores."


def max_rel_err(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray]) -> float:
    """max |ours - theirs| / max |theirs| over all outputs (the worst output)."""
    return max(
        float(np.max(np.abs(np.asarray(a, np.float64) - b))) / max(float(np.max(np.abs(b))), 1e-30)
        for a, b in zip(ours, theirs, strict=True)
    )


def seeded_feeds(model: onnx.ModelProto, count: int, first_seed: int) -> list[dict]:
    """``count`` feeds (name -> array), seeds ``first_seed``, ``first_seed + 1``, ..."""
    return [model_zoo.random_inputs(model, seed=first_seed + i) for i in range(count)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Markdown lines: header, alignment row (first two columns left, rest right), rows."""
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def mib(n: float | None) -> str:
    """Bytes as MiB with two decimals, ``-`` for unknown."""
    return "-" if n is None else f"{n / 2**20:.2f}"


def ms(seconds_ms: float) -> str:
    """Milliseconds with two decimals, three below 1 ms."""
    return f"{seconds_ms:.3f}" if seconds_ms < 1 else f"{seconds_ms:.2f}"
