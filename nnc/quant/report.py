"""The ``--report`` quantization table: per quantized layer its scheme, bits, weight size
before/after, and the measured quantization error.

Error = relative RMS difference ``||y_q - y|| / ||y||`` between the layer's output in the
quantized model and in the float model, over the evaluation feeds (calibration data when
given, else seeded standard-normal inputs, which the table says). It is the accumulated
error at that layer (earlier layers' errors included), which is what the model's users
see. Integer outputs are dequantized with the layer's output parameters first.

Mixed precision (``sensitivity`` given) adds a ``sensitivity`` column (the model's output
error with only that layer quantized int8, ``nnc/quant/sensitivity.py``) and one row per
layer kept float (scheme ``float (kept)``, 32 bits, size unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Operation

from nnc.ir.builder import main_func
from nnc.ir.interpret_quant import dequantize_array
from nnc.ir.ops_compute import ConstantOp
from nnc.ir.ops_quant import QConvOp, QGemmOp, WQConvOp, WQGemmOp
from nnc.quant.collect import run_recording

QUANT_COMPUTE = (QConvOp, QGemmOp, WQConvOp, WQGemmOp)
_BITS = {"i8": 8, "u8": 8, "i4": 4, "u4": 4, "f16": 16, "bf16": 16}


@dataclass(frozen=True)
class QuantRow:
    layer: int
    name: str
    op: str
    scheme: str
    bits: int
    bytes_before: int
    bytes_after: int
    error: float | None
    sensitivity: float | None = None


def _attr(op: Operation, key: str):
    a = op.attributes.get(key)
    if isinstance(a, IntegerAttr):
        return int(a.value.data)
    if isinstance(a, StringAttr):
        return a.data
    return None


def bytes_after(op: Operation) -> int:
    total = sum(a.array.nbytes for a in op.properties.values() if hasattr(a, "array"))
    for v in op.operands:
        if isinstance(v.owner, ConstantOp):
            total += v.owner.prop("value").array.nbytes
    return total


def _layer_values(module: ModuleOp, feed) -> dict[int, np.ndarray]:
    env = run_recording(module, feed)
    out = {}
    for op in main_func(module).body.blocks[0].ops:
        layer = _attr(op, "nn.layer_id")
        if layer is None or not op.results or op.results[0] not in env:
            continue
        y = env[op.results[0]]
        if isinstance(op, QConvOp | QGemmOp):
            y = dequantize_array(y, np.float32(op.prop("y_scale")), np.int32(op.prop("y_zp")), 1, 0)
        out[layer] = y
    return out


def quant_rows(
    float_module: ModuleOp,
    quant_module: ModuleOp,
    feeds: Sequence[Sequence[np.ndarray]],
    sensitivity: dict[int, float | None] | None = None,
) -> list[QuantRow]:
    """One row per quantized compute op of ``quant_module``, and with ``sensitivity``
    (layer id -> error) also per layer of it left float (see module docstring)."""
    num: dict[int, float] = {}
    den: dict[int, float] = {}
    for feed in feeds:
        ref, got = _layer_values(float_module, feed), _layer_values(quant_module, feed)
        for layer, y in got.items():
            if layer in ref and ref[layer].shape == y.shape:
                d = y.astype(np.float64) - ref[layer]
                num[layer] = num.get(layer, 0.0) + float(np.sum(d * d))
                den[layer] = den.get(layer, 0.0) + float(np.sum(ref[layer].astype(np.float64) ** 2))
    rows = []
    sens = sensitivity or {}
    for op in main_func(quant_module).body.blocks[0].ops:
        layer = _attr(op, "nn.layer_id")
        kept = not isinstance(op, QUANT_COMPUTE)
        if kept and (layer is None or layer not in sens):
            continue
        storage = op.prop("storage") if isinstance(op, WQConvOp | WQGemmOp) else "i8"
        err = None
        if layer in num:
            err = float(np.sqrt(num[layer] / den[layer])) if den[layer] > 0 else 0.0
        rows.append(
            QuantRow(
                -1 if layer is None else layer,
                _attr(op, "nn.name") or _attr(op, "onnx.name") or "",
                op.name,
                "float (kept)" if kept else _attr(op, "nn.qscheme") or "",
                32 if kept else _BITS[storage],
                bytes_after(op) if kept else _attr(op, "nn.fp32_bytes") or 0,
                bytes_after(op),
                err,
                sens.get(layer),
            )
        )
    return rows


def quant_table(rows: Sequence[QuantRow], note: str = "") -> list[str]:
    """The rows as aligned text lines (with totals)."""
    from nnc.report import human_bytes

    if not rows:
        return ["quantization: no layer was quantized"]
    mixed = any(r.sensitivity is not None for r in rows)
    header = ("layer", "name", "op", "scheme", "bits", "before", "after", "error")
    header += ("sensitivity",) if mixed else ()
    body = [
        (
            str(r.layer),
            r.name,
            r.op,
            r.scheme,
            str(r.bits),
            human_bytes(r.bytes_before),
            human_bytes(r.bytes_after),
            _num(r.error),
            *((_num(r.sensitivity),) if mixed else ()),
        )
        for r in rows
    ]
    table = [header, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    if mixed:
        note += "; sensitivity: model output error with only that layer int8"
    lines = ["quantization (error: relative RMS of the layer output vs float" + note + ")"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    before = sum(r.bytes_before for r in rows)
    after = sum(r.bytes_after for r in rows)
    lines.append(
        f"quantized weights: {human_bytes(before)} -> {human_bytes(after)} "
        f"({after / max(before, 1):.1%} of fp32)"
    )
    return lines


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2e}"
