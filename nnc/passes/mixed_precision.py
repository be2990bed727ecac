"""Mixed-precision: choose per layer int8 static, int4 weight-only or float to meet an
output-error budget and/or a weight-size budget; mark the layers for ``quantize``.

Before::

    %y = "nn.conv"(%x, %w, %b) <{...}>

After (discardable attributes only; the rewrite is done by the quantize runs below)::

    %y = "nn.conv"(%x, %w, %b) <{...}> {nn.quant_mode = "int8", nn.range = ..., ...}

``nn.quant_mode`` is "int8", "int4-weight" or "float"; a quantize run only rewrites the
layers marked with its own mode. Follow this pass with exactly the pipeline it measured
(``nnc.quant.driver.mixed_spec``)::

    mixed-precision{data="c.npz" max-error=0.01},
    quantize{mode=int4-weight group-size=128},quantize{mode=int8},fold-qdq,dce

(with the same ``group-size`` / ``granularity`` / ``symmetric``). ``nnc --quant mixed``
does all of this. The choice (``nnc/quant/mixed.py``): layers are ranked by sensitivity
(``quant-sensitivity``), least sensitive first; with ``max-error`` alone they become int8
while the measured output error of the whole model stays ``<= max-error``; with
``size-budget`` (MiB) the fewest of them become int8 (then int4) until the weights fit,
and with both the fitted model's error must also be ``<= max-error``. An unreachable
budget raises InvalidOptionError naming the smallest reachable size / the error reached.

Preconditions: ``data`` has one array per model input (as ``calibrate``); every op has
interpreter semantics (errors are measured in the interpreter); at least one of
``max-error`` / ``size-budget`` (else InvalidOptionError). Without ``data`` the pass
changes nothing and says so.

Options: ``data``, ``max-error``, ``size-budget`` (at least one), ``samples``
(feeds the errors are measured on, default 4), ``method`` (calibration),
``granularity`` (int8 weights), ``group-size`` (int4 weights, default 128),
``symmetric`` (s8 activations).

Numeric contract: the IR's semantics are unchanged (attributes only); the model the
following quantize runs produce has the measured output error reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnc.errors import InvalidOptionError
from nnc.passes.report import record


@dataclass(frozen=True)
class MixedPrecisionPass(ModulePass):
    """Choose and mark per-layer precisions (see module docstring)."""

    name = "mixed-precision"

    data: str = ""
    """Calibration .npz file (arrays keyed by input name, first axis = samples)."""

    max_error: float | None = None
    """Largest output error (relative RMS of the outputs vs float) allowed."""

    size_budget: float | None = None
    """Total weight bytes allowed, in MiB."""

    samples: int = 4
    """Feeds (batches) on which errors are measured."""

    method: str = "minmax"
    """Calibration range method."""

    granularity: str = ""
    """int8 weight scales: per-tensor or per-channel ('' = per-channel)."""

    group_size: int = 128
    """int4 weight-only group size."""

    symmetric: bool = False
    """s8 activations with zero point 0 (default: u8 with a zero point)."""

    def __post_init__(self) -> None:
        if self.max_error is not None and not (
            math.isfinite(self.max_error) and self.max_error >= 0
        ):
            raise InvalidOptionError(f"{self.name}: max-error must be a finite number >= 0")
        if self.size_budget is not None and not (
            math.isfinite(self.size_budget) and self.size_budget > 0
        ):
            raise InvalidOptionError(f"{self.name}: size-budget must be a positive number")
        if self.samples < 1 or self.group_size < 1:
            raise InvalidOptionError(f"{self.name}: samples and group-size must be >= 1")
        if self.granularity not in ("", "per-tensor", "per-channel"):
            raise InvalidOptionError(f"{self.name}: granularity must be per-tensor or per-channel")

    def spec(self) -> str:
        """The quantize pipeline this pass measures (to run after it)."""
        from nnc.quant.driver import mixed_spec

        return mixed_spec(self.granularity, self.group_size, self.symmetric or None)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.data:
            record(self.name, "no calibration data: nothing chosen")
            return
        if self.max_error is None and self.size_budget is None:
            raise InvalidOptionError(f"{self.name}: needs max-error and/or size-budget")
        from nnc.passes.calibrate import model_feeds
        from nnc.passes.pipelines import parse_pipeline_spec
        from nnc.quant.mixed import MIB, apply_with, choose_plan
        from nnc.quant.sensitivity import mark_layers, prepare_reference

        ref = prepare_reference(op, model_feeds(op, self.data), self.method, self.samples)
        budget = None if self.size_budget is None else int(self.size_budget * MIB)
        passes = parse_pipeline_spec(self.spec())
        plan = choose_plan(ref, apply_with(passes), self.max_error, budget)
        mark_layers(op, plan.modes)
        for line in plan.lines:
            record(self.name, line)
