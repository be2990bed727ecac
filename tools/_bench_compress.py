"""``bench.py --compress``: size, MACs and latency of each compression technique vs the
uncompressed -O3 build of the same model, in one process on the same input.

Per technique (a ``--compress`` spec; ``baseline`` = none):

* latency: ``nnc.compile(model, opt_level=3, compress=spec)`` (what a user gets, conv
  algorithms chosen by -O3), ``block_medians`` per thread count (default 1);
* library: the size of that ``.so`` file (``CompiledModel.save``), which is what compression
  must shrink (compressed storage: sparse/codebook weights decoded once at the first run);
* nncz: the weight payload of the nncz file (``nnc.compress.nncz.save``: pruned /
  shared weights Huffman-coded) of the same spec compiled with ``conv_algo="direct"``
  (untransformed weights: Winograd/FFT weights would hide sparsity and sharing);
* MACs: of that direct-conv module, every conv/gemm/matmul at its dense shape
  (``nnc.report.count_macs``; CSR layers at their dense (N, K) shape), and the non-zero
  MACs (a layer's MACs times its weight density; CSR layers: nnz x columns), which is
  what pruning can save at best;
* rel err: max |y - y_baseline| / max |y_baseline| (random weights: accuracy is
  meaningless, the output change is not).
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import onnx
from _bench_common import (
    block_medians,
    load_now,
    machine_description,
    markdown_table,
    max_rel_err,
    mib,
    ms,
    timing_note,
)

import nnc
from nnc.compiler import compile_model
from nnc.compress import nncz
from nnc.ir.builder import main_func
from nnc.ir.ops_compute import ConstantOp
from nnc.ir.types import num_elements, shape_of
from nnc.report import count_macs
from nnc.testing import model_zoo

#: (label, spec) of the default techniques; spec None = the uncompressed baseline.
TECHNIQUES: list[tuple[str, str | None]] = [
    ("baseline -O3", None),
    ("prune 50% (+sparse)", "prune=0.5,sparse"),
    ("prune 80% (+sparse)", "prune=0.8,sparse"),
    ("2:4 N:M", "pattern=2:4"),
    ("channels 25%", "channels=0.25"),
    ("low-rank 0.5 (SVD/Tucker-2)", "lowrank=0.5"),
    ("cluster 4-bit + huffman", "cluster=4bit,huffman"),
    ("prune 80% + cluster 4-bit + huffman", "prune=0.8,cluster=4bit,huffman"),
]


def module_macs(module) -> tuple[int, int]:
    """(dense MACs, non-zero-weight MACs) of every MAC op of ``module``'s main."""
    dense = nonzero = 0
    for op in main_func(module).body.blocks[0].ops:
        if op.name == "nn.sparse_gemm":
            out = num_elements(tuple(shape_of(op.results[0])))
            n = len(op.prop("row_ptr").array) - 1
            nnz = int(op.prop("row_ptr").array[-1])
            dense += out * op.prop("k")
            nonzero += out // max(n, 1) * nnz
            continue
        macs = count_macs(op)
        if not macs:
            continue
        density = 1.0
        if len(op.operands) > 1 and isinstance(op.operands[1].owner, ConstantOp):
            w = op.operands[1].owner.prop("value").array
            if w.dtype.kind == "f":  # not integer codes (quantized / codebook indices)
                density = np.count_nonzero(w) / max(w.size, 1)
        dense += macs
        nonzero += int(round(macs * density))
    return dense, nonzero


def nncz_bytes(module) -> int:
    """Weight payload bytes of ``module`` written as an nncz file."""
    fd, path = tempfile.mkstemp(suffix=".nncz")
    os.close(fd)
    try:
        return nncz.save(module, path).weight_bytes
    finally:
        os.unlink(path)


def library_bytes(lib) -> int:
    """Bytes of ``lib``'s shared library file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "libnet.so")
        lib.save(path)
        return os.path.getsize(path)


def bench_compress_model(
    name: str, model: onnx.ModelProto, techniques, args, log=sys.stderr
) -> list[dict]:
    """Build, measure and time every technique of one model; one row per (technique,
    thread count), baseline first."""
    feed = model_zoo.random_inputs(model, seed=0)
    builds = []
    for label, spec in techniques:
        lib = nnc.compile(model, opt_level=3, compress=spec)
        direct = compile_model(model, opt_level=3, compress=spec, conv_algo="direct", build=False)
        dense, nonzero = module_macs(direct.module)
        builds.append(
            {
                "model": name,
                "technique": label,
                "spec": spec or "-",
                "lib": lib,
                "weights": library_bytes(lib),
                "nncz": nncz_bytes(direct.module),
                "macs": dense,
                "nz_macs": nonzero,
                "out": lib.run(feed),
                "compile_s": lib.report.compile_seconds or 0.0,
            }
        )
        print(f"{name} {label}: compiled in {builds[-1]['compile_s']:.1f} s", file=log)
    rows = []
    for threads in args.threads:
        for b in builds:
            b["lib"].set_num_threads(threads)
        times = block_medians(
            [lambda lib=b["lib"]: lib.run(feed) for b in builds],
            args.runs,
            args.warmup,
            args.rounds,
        )
        load = load_now()
        for b, t in zip(builds, times):
            row = {k: v for k, v in b.items() if k not in ("lib", "out")}
            row |= {"threads": threads, "ms": t * 1e3, "load": load}
            row["rel_err"] = max_rel_err(b["out"], builds[0]["out"])
            rows.append(row)
            print(f"{name} {b['technique']} x{threads}: {t * 1e3:.2f} ms", file=log)
    return rows


def compress_table(rows: list[dict], args) -> list[str]:
    """Markdown lines; ratios against the baseline row of the same model and threads."""
    lines = [f"Machine: {machine_description()}"]
    lines.append(timing_note(args.runs, args.rounds, [r["load"] for r in rows]))
    lines.append(
        "x smaller / speedup: baseline / technique. "
        "library: .so file; nncz: Huffman-coded file payload; nz MACs: MACs on non-zero "
        "weights; rel err vs the baseline output (random weights)."
    )
    lines.append("")
    base = {}
    body = []
    for r in rows:
        b = base.setdefault((r["model"], r["threads"]), r)
        body.append(
            [
                r["model"],
                r["technique"],
                str(r["threads"]),
                mib(r["weights"]),
                f"{b['weights'] / max(r['weights'], 1):.2f}",
                mib(r["nncz"]),
                f"{b['nncz'] / max(r['nncz'], 1):.1f}",
                f"{r['macs'] / 1e6:.1f}",
                f"{r['nz_macs'] / 1e6:.1f}",
                ms(r["ms"]),
                f"{b['ms'] / r['ms']:.2f}",
                f"{r['rel_err']:.1e}",
            ]
        )
    head = ["model", "technique", "threads", "library MiB", "x smaller", "nncz MiB"]
    head += ["nncz x smaller", "MMACs", "nz MMACs", "ms", "speedup", "rel err"]
    return lines + markdown_table(head, body)
