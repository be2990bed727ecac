"""Quantization as one step of ``compile_model``: calibrate (if data), run the
``quantize`` and ``fold-qdq`` passes, and build the report's quantization table.

``quant="mixed"`` (needs calibration data): choose per layer int8 static / int4
weight-only / float with ``nnc.quant.mixed.choose_plan`` to meet ``max_error`` and/or
``size_budget`` (MiB), mark the layers (``nn.quant_mode``) and run ``mixed_spec``: the
int4 quantize, then the int8 quantize, fold-qdq, dce. The measured output error and
each layer's sensitivity go to the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64

from nnc.ir.builder import main_func
from nnc.ir.nn_base import TensorSpec
from nnc.passes.calibrate import annotate_ranges, model_feeds
from nnc.passes.pipelines import run_pipeline
from nnc.passes.quantize import MODE_ATTR
from nnc.passes.report import PassReport
from nnc.quant.ranges import ARG_RANGES_ATTR, RANGE_ATTR
from nnc.quant.report import QUANT_COMPUTE, quant_rows, quant_table

#: Feeds used to measure the report's error column.
EVAL_FEEDS = 2
#: Feeds (batches) on which mixed precision measures sensitivity and output error.
MIXED_FEEDS = 4


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


def mixed_spec(
    granularity: str = "", group_size: int | None = None, symmetric: bool | None = None
) -> str:
    """The pass pipeline of --quant mixed: int4 weight-only layers (always per-group,
    ``group_size`` default 128), then int8 static layers (``granularity``), fold-qdq, dce.
    Each quantize run only rewrites the layers marked with its mode."""
    int4 = quant_spec("int4-weight", "", 128 if group_size is None else group_size, symmetric)
    int8 = quant_spec("int8", granularity, None, symmetric)
    return f"{int4.split(',')[0]},{int8}"


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
    max_error: float | None = None,
    size_budget: float | None = None,
    samples: int = MIXED_FEEDS,
) -> tuple[str, list[str]]:
    """Quantize ``module`` in place; returns (pipeline spec, report lines).

    ``max_error`` / ``size_budget`` (MiB) / ``samples`` (feeds): ``quant="mixed"`` only."""
    if quant == "mixed":
        return _quantize_mixed(
            module,
            calibration,
            method=method,
            spec=mixed_spec(granularity, group_size, symmetric),
            report=PassReport() if report is None else report,
            measure=measure,
            max_error=max_error,
            size_budget=size_budget,
            samples=samples,
        )
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
    lines += [f"{m}" for p, m in report.lines if m.startswith("warning:")]
    if measure:
        note = ""
        eval_feeds = feeds[:EVAL_FEEDS] if feeds else None
        if not eval_feeds:
            eval_feeds = _random_feeds(module, 1)
            note = ", measured on random normal inputs: no calibration data"
        lines += quant_table(quant_rows(float_module, module, eval_feeds), note)
    _strip_ranges(module)
    return spec, lines


def _quantize_mixed(
    module: ModuleOp,
    calibration: Any,
    *,
    method: str,
    spec: str,
    report: PassReport,
    measure: bool,
    max_error: float | None,
    size_budget: float | None,
    samples: int,
) -> tuple[str, list[str]]:
    from nnc.errors import InvalidOptionError
    from nnc.passes.pipelines import parse_pipeline_spec
    from nnc.quant.mixed import MIB, apply_with, choose_plan
    from nnc.quant.sensitivity import mark_layers, prepare_reference

    if calibration is None:
        raise InvalidOptionError(
            "--quant mixed needs --calibration data (sensitivities and the error budget are "
            "measured on it)"
        )
    feeds = model_feeds(module, calibration)
    ref = prepare_reference(module, feeds, method, samples)
    float_module = module.clone() if measure else None
    report.add("calibrate", f"recorded ranges from {len(feeds)} batches ({method})")
    budget = None if size_budget is None else int(size_budget * MIB)
    plan = choose_plan(ref, apply_with(parse_pipeline_spec(spec)), max_error, budget)
    mark_layers(module, plan.modes)
    report.add("mixed-precision", plan.lines[0])
    run_pipeline(module, spec, report)
    lines = list(plan.lines)
    if measure:
        sens = {s.layer: s.error for s in plan.sensitivity}
        lines += quant_table(quant_rows(float_module, module, ref.feeds, sens))
    _strip_ranges(module)
    return spec, lines


def _strip_ranges(module: ModuleOp) -> None:
    fn = main_func(module)
    fn.attributes.pop(ARG_RANGES_ATTR, None)
    for op in fn.body.blocks[0].ops:
        op.attributes.pop(RANGE_ATTR, None)
        op.attributes.pop(MODE_ATTR, None)
        if not isinstance(op, QUANT_COMPUTE):
            op.attributes.pop("nn.layer_id", None)
