"""Quantization as one step of ``compile_model``: calibrate (if data), run the
``quantize`` and ``fold-qdq`` passes, and build the report's quantization table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64

from nnc.ir.builder import main_func
from nnc.ir.nn_base import TensorSpec
from nnc.passes.calibrate import annotate_ranges, model_feeds
from nnc.passes.pipelines import run_pipeline
from nnc.passes.report import PassReport
from nnc.quant.ranges import ARG_RANGES_ATTR, RANGE_ATTR
from nnc.quant.report import QUANT_COMPUTE, quant_rows, quant_table

#: Feeds used to measure the report's error column.
EVAL_FEEDS = 2


def quant_spec(
    quant: str, granularity: str = "", group_size: int | None = None, symmetric: bool | None = None
) -> str:
    """The pass pipeline of a --quant mode.

    ``symmetric`` None: the defaults (u8 asymmetric activations, symmetric weights);
    True: s8 activations and symmetric weights; False: u8 activations and weights with
    zero points. ``group_size`` None: 128 for int4-weight, else 32.
    """
    if group_size is None:
        group_size = 128 if quant == "int4-weight" else 32
    act_sym = bool(symmetric)
    w_sym = symmetric is None or symmetric
    opts = [
        f"mode={quant}",
        f"group-size={group_size}",
        f"symmetric={str(act_sym).lower()}",
        f"weight-symmetric={str(w_sym).lower()}",
    ]
    if granularity:
        opts.append(f"granularity={granularity}")
    return f"quantize{{{' '.join(opts)}}},fold-qdq,dce"


def _random_feeds(module: ModuleOp, n: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(0)
    args = main_func(module).body.blocks[0].args
    return [
        [rng.standard_normal(TensorSpec.of(a).shape).astype(np.float32) for a in args]
        for _ in range(n)
    ]


def quantize_module(
    module: ModuleOp,
    quant: str,
    calibration: Any = None,
    *,
    method: str = "minmax",
    granularity: str = "",
    group_size: int | None = None,
    symmetric: bool | None = None,
    report: PassReport | None = None,
    measure: bool = True,
) -> tuple[str, list[str]]:
    """Quantize ``module`` in place; returns (pipeline spec, report lines)."""
    report = PassReport() if report is None else report
    block = main_func(module).body.blocks[0]
    for i, op in enumerate(block.ops):
        op.attributes.setdefault("nn.layer_id", IntegerAttr(i, i64))
    float_module = module.clone() if measure else None
    feeds = model_feeds(module, calibration) if calibration is not None else None
    lines: list[str] = []
    if quant == "int8" and feeds:
        n = annotate_ranges(module, feeds, method)
        report.add("calibrate", f"recorded {n} ranges from {len(feeds)} batches ({method})")
    spec = quant_spec(quant, granularity, group_size, symmetric)
    run_pipeline(module, spec, report)
    _strip_ranges(module)
    lines += [f"{m}" for p, m in report.lines if m.startswith("warning:")]
    if measure:
        note = ""
        eval_feeds = feeds[:EVAL_FEEDS] if feeds else None
        if not eval_feeds:
            eval_feeds = _random_feeds(module, 1)
            note = ", measured on random normal inputs: no calibration data"
        lines += quant_table(quant_rows(float_module, module, eval_feeds), note)
    return spec, lines


def _strip_ranges(module: ModuleOp) -> None:
    fn = main_func(module)
    fn.attributes.pop(ARG_RANGES_ATTR, None)
    for op in fn.body.blocks[0].ops:
        op.attributes.pop(RANGE_ATTR, None)
        if not isinstance(op, QUANT_COMPUTE):
            op.attributes.pop("nn.layer_id", None)
