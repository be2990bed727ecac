"""Calibrate: run the float model over calibration data and record activation ranges.

Before::

    %y = "nn.conv"(%x, %w, %b) <{...}>

After (ranges of every float32 value: op results as ``nn.range``, arguments as the
function attribute ``nn.arg_ranges``; see ``nnc/quant/ranges.py``)::

    %y = "nn.conv"(%x, %w, %b) <{...}> {nn.range = array<f64: -1.5, 3.25>}

The model runs in the interpreter (``nnc.ir.interpret``, the oracle) over each feed; the
range of each tensor is chosen by ``method`` (``nnc/quant/methods.py``: minmax,
percentile, entropy, mse) from a sample of its elements over all feeds; the model's
outputs always use minmax (clipping logits changes the argmax), and the input of a max
pool / reshape / transpose shares its output's range.

Preconditions: every op of the model has interpreter semantics; the data has one array
per model input whose trailing dims match the input's (the first axis is split into
batches of the model's batch size).

Options: ``data`` (an .npz file: one array per input name, first axis = samples),
``method``, ``max-batches`` (0 = all). Without data the pass changes nothing and says so
(the quantize pass then falls back to dynamic activation quantization).

Numeric contract: the IR's semantics are unchanged (only discardable attributes are
added).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnc.errors import InvalidOptionError
from nnc.ir.builder import io_names, main_func, return_op
from nnc.ir.nn_base import TensorSpec
from nnc.ir.ops_compute import GlobalMaxPoolOp, MaxPoolOp
from nnc.ir.ops_shape import ReshapeOp, TransposeOp
from nnc.passes.report import record
from nnc.quant.collect import collect_samples
from nnc.quant.data import load_feeds
from nnc.quant.methods import METHODS, select_range
from nnc.quant.ranges import get_range, set_range

_MOVERS = (MaxPoolOp, GlobalMaxPoolOp, ReshapeOp, TransposeOp)


def model_feeds(module: ModuleOp, data, limit: int | None = None) -> list[list[np.ndarray]]:
    """Calibration feeds for ``module`` from an .npz path, a mapping or an iterable."""
    names, _ = io_names(module)
    shapes = [TensorSpec.of(a).shape for a in main_func(module).body.blocks[0].args]
    return load_feeds(data, names, shapes, limit)


def annotate_ranges(
    module: ModuleOp, feeds: Sequence[Sequence[np.ndarray]], method: str = "minmax"
) -> int:
    """Record the range of every float value of ``main``; returns how many were recorded."""
    if method not in METHODS:
        raise InvalidOptionError(
            f"unknown calibration method '{method}' (choose from {', '.join(METHODS)})"
        )
    samples = collect_samples(module, feeds)
    outputs = set(return_op(module).operands)
    for value, flat in samples.items():
        # model outputs keep their whole observed range: clipping logits changes argmax
        lo, hi = select_range("minmax" if value in outputs else method, flat)
        set_range(value, lo, hi)
    _share_ranges_through_movers(module)
    return len(samples)


def _share_ranges_through_movers(module: ModuleOp) -> None:
    """Give the input of a max pool / reshape / transpose (when it is its only user) the
    range of the output: these ops only select or move values, so one scale serves both
    sides, and clipping the input of a max pool to a range its maxima exceed would
    discard exactly the values it selects."""
    block = main_func(module).body.blocks[0]
    for op in reversed(list(block.ops)):
        if not isinstance(op, _MOVERS) or len(op.operands) != 1:
            continue
        src = op.operands[0]
        out_range = get_range(op.results[0])
        if out_range is not None and len(list(src.uses)) == 1 and get_range(src) is not None:
            set_range(src, *out_range)


@dataclass(frozen=True)
class CalibratePass(ModulePass):
    """Record activation ranges from calibration data (see module docstring)."""

    name = "calibrate"

    data: str = ""
    """Calibration .npz file (arrays keyed by input name, first axis = samples)."""

    method: str = "minmax"
    """Range selection: minmax, percentile, entropy or mse."""

    max_batches: int = 0
    """Use at most this many feeds (0: all)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidOptionError(
                f"{self.name}: unknown method '{self.method}' (choose from {', '.join(METHODS)})"
            )
        if self.max_batches < 0:
            raise InvalidOptionError(f"{self.name}: max-batches must be >= 0")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.data:
            record(self.name, "no calibration data: nothing recorded")
            return
        feeds = model_feeds(op, self.data, self.max_batches or None)
        n = annotate_ranges(op, feeds, self.method)
        record(self.name, f"recorded {n} ranges from {len(feeds)} batches ({self.method})")
