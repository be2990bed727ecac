"""``bench.py --quant int8``: nnc int8 vs nnc fp32 vs onnxruntime fp32 / int8 QDQ.

Per model, with the SAME calibration feeds (``--calib-samples`` seeded random inputs,
seeds 0..N-1) for both quantizers:

* nnc fp32: ``nnc.compile(model, opt_level=3)``;
* nnc int8: ``nnc.compile(model, opt_level=3, quant="int8", calibration=feeds,
  calib_method="minmax", granularity="per-channel")`` (u8 activations, symmetric s8
  weights: nnc's defaults);
* ORT fp32: the ``quant_pre_process`` output below (the model after ORT's own graph
  optimizations), all graph optimizations;
* ORT int8: ``quant_pre_process`` (ORT's recommended shape inference + graph
  optimization, e.g. BN folding) then ``quantize_static(QuantFormat.QDQ,
  per_channel=True, activation_type=QUInt8, weight_type=QInt8, MinMax)``: the U8S8 QDQ
  format ORT recommends on x86-64 (no ``reduce_range``: meant for CPUs without VNNI).

Timing is ``block_medians`` on one fresh input (seed 1000) for 1 and N threads. Accuracy
is measured on ``--eval-samples`` fresh inputs (seeds 1000...): each int8 engine against
its own fp32 build, max |int8 - fp32| / max |fp32| (worst output, worst sample) and, for
(batch, classes) outputs, top-1 agreement. Weight bytes: nnc's ``report.total_weight_bytes``
(as ``compile_stats.py``), ORT's summed initializer bytes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

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
    ort_session,
    seeded_feeds,
    timing_note,
)
from onnx import numpy_helper

import nnc

EVAL_SEED = 1000


def with_constant_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose ``ConstantOfShape`` nodes on initializer shapes are initializers and
    whose graph inputs are only the real inputs (IR >= 4), at opset >= 13 (per-channel QDQ
    needs DequantizeLinear's ``axis``). onnx's light models (opset 9, IR 3) build their
    weights that way, and ORT's calibrator would otherwise ask for the shapes as inputs."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    keep, names = [], set()
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
            shape = numpy_helper.to_array(inits[node.input[0]]).astype(np.int64)
            attr = {a.name: a for a in node.attribute}.get("value")
            value = numpy_helper.to_array(attr.t) if attr else np.zeros(1, np.float32)
            filled = np.full(tuple(shape), value.reshape(-1)[0], value.dtype)
            graph.initializer.append(numpy_helper.from_array(filled, node.output[0]))
            names.add(node.output[0])
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    live = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)
    inputs = [i for i in graph.input if i.name not in inits and i.name not in names]
    del graph.input[:]
    graph.input.extend(inputs)
    out.ir_version = max(out.ir_version, 4)  # initializers need not be inputs from IR 4
    opset = max((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), default=13)
    return onnx.version_converter.convert_version(out, 13) if opset < 13 else out


def ort_int8_model(model: onnx.ModelProto, calib: list[dict]) -> tuple[bytes, bytes]:
    """(pre-processed fp32 model, int8 QDQ model) as serialized bytes; see module doc."""
    model = with_constant_weights(model)
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(calib)

        def get_next(self) -> dict | None:
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(prefix="nnc-bench-q-") as tmp:
        src, pre, out = (os.path.join(tmp, f) for f in ("m.onnx", "pre.onnx", "q.onnx"))
        onnx.save(model, src)
        quant_pre_process(src, pre, skip_symbolic_shape=True)  # static shapes: onnx suffices
        quantize_static(
            pre,
            out,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        with open(pre, "rb") as f_pre, open(out, "rb") as f_out:
            return f_pre.read(), f_out.read()


def initializer_bytes(data: bytes) -> int:
    """Summed bytes of a serialized ONNX model's initializers (its weights)."""
    model = onnx.load_from_string(data)
    return sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


def top1_agreement(ours: list[list[np.ndarray]], ref: list[list[np.ndarray]]) -> float | None:
    """Fraction of samples whose first output's argmax matches ``ref``'s (None unless the
    first output is (batch, classes) with more than one class)."""
    if ref[0][0].ndim != 2 or ref[0][0].shape[1] < 2:
        return None
    hits = [np.array_equal(a[0].argmax(1), b[0].argmax(1)) for a, b in zip(ours, ref)]
    return float(np.mean(hits))


def bench_quant_model(
    name: str, model: onnx.ModelProto, args, log=sys.stderr
) -> tuple[list[dict], dict]:
    """Compile, check and time one model; (one row per thread count, accuracy/size row)."""
    calib = seeded_feeds(model, args.calib_samples, 0)
    evals = seeded_feeds(model, max(args.eval_samples, 1), EVAL_SEED)
    start = time.perf_counter()
    fp32 = nnc.compile(model, opt_level=3)
    fp32_s = time.perf_counter() - start
    start = time.perf_counter()
    int8 = nnc.compile(
        model,
        opt_level=3,
        quant="int8",
        calibration=calib,
        calib_method="minmax",
        granularity="per-channel",
    )
    int8_s = time.perf_counter() - start
    print(f"{name}: nnc fp32 {fp32_s:.1f} s, int8 {int8_s:.1f} s to compile", file=log)
    start = time.perf_counter()
    ort_fp32, ort_int8 = ort_int8_model(model, calib)
    print(f"{name}: ORT quantize_static {time.perf_counter() - start:.1f} s", file=log)

    s_fp32, s_int8 = ort_session(ort_fp32, 1), ort_session(ort_int8, 1)
    out = {
        key: [fn(feed) for feed in evals]
        for key, fn in (
            ("nnc_fp32", fp32.run),
            ("nnc_int8", int8.run),
            ("ort_fp32", lambda f: s_fp32.run(None, f)),
            ("ort_int8", lambda f: s_int8.run(None, f)),
        )
    }

    def worst(a: str, b: str) -> float:
        return max(max_rel_err(x, y) for x, y in zip(out[a], out[b]))

    info = {
        "model": name,
        "fp32_err": worst("nnc_fp32", "ort_fp32"),
        "nnc_err": worst("nnc_int8", "nnc_fp32"),
        "ort_err": worst("ort_int8", "ort_fp32"),
        "nnc_top1": top1_agreement(out["nnc_int8"], out["nnc_fp32"]),
        "ort_top1": top1_agreement(out["ort_int8"], out["ort_fp32"]),
        "nnc_fp32_bytes": fp32.report.total_weight_bytes,
        "nnc_int8_bytes": int8.report.total_weight_bytes,
        "ort_fp32_bytes": initializer_bytes(ort_fp32),
        "ort_int8_bytes": initializer_bytes(ort_int8),
        "int8_compile_s": int8_s,
        "samples": len(evals),
    }
    print(f"{name}: nnc fp32 vs ORT fp32 rel err {info['fp32_err']:.1e}", file=log)
    feed = evals[0]
    rows = []
    for threads in args.threads:
        fp32.set_num_threads(threads)
        int8.set_num_threads(threads)
        s_fp32, s_int8 = ort_session(ort_fp32, threads), ort_session(ort_int8, threads)
        times = block_medians(
            [
                lambda: fp32.run(feed),
                lambda: int8.run(feed),
                lambda s=s_fp32: s.run(None, feed),
                lambda s=s_int8: s.run(None, feed),
            ],
            args.runs,
            args.warmup,
            args.rounds,
        )
        nf, ni, of, oi = (t * 1e3 for t in times)
        row = {"model": name, "threads": threads, "nnc_fp32": nf, "nnc_int8": ni}
        row |= {"ort_fp32": of, "ort_int8": oi, "load": load_now()}
        print(
            f"{name} x{threads}: nnc fp32 {nf:.2f} int8 {ni:.2f} | ORT fp32 {of:.2f} "
            f"int8 {oi:.2f} ms",
            file=log,
        )
        rows.append(row)
    return rows, info


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def quant_tables(rows: list[dict], infos: list[dict], args) -> list[str]:
    """The speed table and the accuracy/size table (Markdown lines)."""
    lines = [f"Machine: {machine_description()}"]
    lines.append(timing_note(args.runs, args.rounds, [r["load"] for r in rows]))
    lines.append(
        "speedup = fp32 / int8 of the same engine (target for nnc: >= 2); nnc/ORT int8 < 1: "
        f"nnc int8 is faster than ORT's QDQ int8 (target <= 1); {args.calib_samples} "
        "calibration samples."
    )
    lines.append("")
    speed = [
        [
            r["model"],
            str(r["threads"]),
            ms(r["nnc_fp32"]),
            ms(r["nnc_int8"]),
            ms(r["ort_fp32"]),
            ms(r["ort_int8"]),
            f"{r['nnc_fp32'] / r['nnc_int8']:.2f}",
            f"{r['ort_fp32'] / r['ort_int8']:.2f}",
            f"{r['nnc_int8'] / r['ort_int8']:.2f}",
        ]
        for r in rows
    ]
    head = ["model", "threads", "nnc fp32 ms", "nnc int8 ms", "ORT fp32 ms", "ORT int8 ms"]
    head += ["nnc int8 speedup", "ORT int8 speedup", "nnc/ORT int8"]
    lines += markdown_table(head, speed)
    lines.append("")
    lines.append(
        "int8 vs own fp32 on fresh inputs: rel err = max|int8 - fp32| / max|fp32|; top-1 = "
        "argmax agreement; weights = nnc report / ORT initializers."
    )
    lines.append("")
    acc = [
        [
            i["model"],
            str(i["samples"]),
            f"{i['nnc_err']:.1e}",
            _pct(i["nnc_top1"]),
            f"{i['ort_err']:.1e}",
            _pct(i["ort_top1"]),
            f"{mib(i['nnc_fp32_bytes'])} / {mib(i['nnc_int8_bytes'])}",
            f"{mib(i['ort_fp32_bytes'])} / {mib(i['ort_int8_bytes'])}",
            f"{i['int8_compile_s']:.1f}",
        ]
        for i in infos
    ]
    head = ["model", "samples", "nnc int8 rel err", "nnc top-1", "ORT int8 rel err", "ORT top-1"]
    head += ["nnc weights MiB fp32 / int8", "ORT weights MiB fp32 / int8", "nnc int8 compile s"]
    lines += markdown_table(head, acc)
    return lines
