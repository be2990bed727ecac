"""Quant-sensitivity: measure, per quantizable layer, how much quantizing only that layer
perturbs the model's outputs on calibration data.

Before::

    %y = "nn.conv"(%x, %w, %b) <{...}>

After (discardable attributes only)::

    %y = "nn.conv"(%x, %w, %b) <{...}> {nn.layer_id = 3, nn.sensitivity = 4.4e-03 : f64,
                                        nn.range = ...}

``nn.sensitivity`` is the output error (``nnc/quant/sensitivity.py``: relative RMS of all
model outputs vs the float model, pooled over the first ``samples`` feeds) of the model in
which only this layer is quantized with ``mode`` (int8 static by default, with the
quantize pass's default options); layers the scheme declines get no attribute. One report
line per layer. Activation ranges come from all the data (``calibrate``; kept when the
module already has ranges).

Preconditions: ``data`` has one array per model input (as ``calibrate``); every op has
interpreter semantics (errors are measured in the interpreter).

Options: ``data`` (.npz, as ``calibrate``), ``mode`` (a quantize mode), ``samples``
(feeds measured, default 4), ``method`` (calibration range method).
Without data the pass changes nothing and says so.

Numeric contract: the IR's semantics are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, ModuleOp, f64
from xdsl.passes import ModulePass

from nnc.errors import InvalidOptionError
from nnc.ir.builder import main_func
from nnc.passes.quantize import LAYER_ATTR, MODES
from nnc.passes.report import record

SENSITIVITY_ATTR = "nn.sensitivity"


@dataclass(frozen=True)
class QuantSensitivityPass(ModulePass):
    """Annotate each quantizable layer with its sensitivity (see module docstring)."""

    name = "quant-sensitivity"

    data: str = ""
    """Calibration .npz file (arrays keyed by input name, first axis = samples)."""

    mode: str = "int8"
    """The scheme each layer is quantized with, alone."""

    samples: int = 4
    """Feeds (batches) on which the output error is measured."""

    method: str = "minmax"
    """Calibration range method (when the module has no ranges yet)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidOptionError(
                f"{self.name}: unknown mode '{self.mode}' (choose from {', '.join(MODES)})"
            )
        if self.samples < 1:
            raise InvalidOptionError(f"{self.name}: samples must be >= 1")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.data:
            record(self.name, "no calibration data: nothing measured")
            return
        from nnc.passes.calibrate import model_feeds
        from nnc.passes.pipelines import parse_pipeline_spec
        from nnc.quant.driver import quant_spec
        from nnc.quant.mixed import apply_with
        from nnc.quant.sensitivity import prepare_reference, sensitivities

        ref = prepare_reference(op, model_feeds(op, self.data), self.method, self.samples)
        passes = parse_pipeline_spec(quant_spec(self.mode).split(",")[0])
        apply = apply_with(passes)
        rows = {r.layer: r for r in sensitivities(ref, self.mode, lambda m: apply(m, None))}
        for layer_op in main_func(op).body.blocks[0].ops:
            lid = layer_op.attributes.get(LAYER_ATTR)
            row = rows.get(int(lid.value.data)) if isinstance(lid, IntegerAttr) else None
            if row is None:
                continue
            if row.error is None:
                record(self.name, f"layer {row.layer} {row.op}: declined by {self.mode}")
                continue
            layer_op.attributes[SENSITIVITY_ATTR] = FloatAttr(row.error, f64)
            record(self.name, f"layer {row.layer} {row.name or row.op}: {row.error:.3e}")
