"""Whole-model output error of a (partly) quantized model, and per-layer sensitivity.

**Output error** (the one metric of mixed precision, the ``--max-error`` budget and the
report's ``sensitivity`` column): the relative RMS difference of the model outputs,
all outputs and all evaluation feeds pooled,

    error = sqrt( sum_feeds sum_outputs ||y_q - y||^2  /  sum_feeds sum_outputs ||y||^2 )

where ``y`` is the float model's output and ``y_q`` the candidate's, both computed by the
numpy interpreter (the oracle; the compiled library equals it bit for bit on integer
layers). 0 means identical outputs; 0.01 is a 1 % RMS perturbation of the logits.

**Sensitivity** of a layer (conv / gemm / matmul with constant weights): the output
error of the model in which only that layer is quantized (with the given scheme, int8
static by default); every other layer stays float.

Cost control: ``Reference`` runs the float model once per feed and keeps every
intermediate value; a candidate (a clone of the float module, then rewritten) reuses
those values for its unchanged prefix (every op before the first rewritten one) and
interprets only the rest. The caller chooses how many feeds to use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Operation, SSAValue

from nnc.ir.builder import main_func
from nnc.ir.interpret import evaluate_op
from nnc.passes.quantize import FP32_BYTES_ATTR, LAYER_ATTR, MODE_ATTR, layer_candidates
from nnc.quant.collect import run_recording
from nnc.quant.report import QUANT_COMPUTE, bytes_after


@dataclass
class Candidate:
    """A clone of the reference module; ``value_map`` sends its values (as cloned) to
    the reference module's values."""

    module: ModuleOp
    value_map: dict[SSAValue, SSAValue]


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer: its id (``nn.layer_id``), name, op, sensitivity (output error with only
    this layer quantized; None if the scheme declined it) and weight bytes in fp32 and
    quantized."""

    layer: int
    name: str
    op: str
    error: float | None
    fp32_bytes: int
    quant_bytes: int


class Reference:
    """The float model's values on the evaluation feeds (computed once)."""

    def __init__(self, module: ModuleOp, feeds: Sequence[Sequence[np.ndarray]]):
        if not feeds:
            raise ValueError("Reference needs at least one feed")
        self.module = module
        self.envs = [run_recording(module, feed) for feed in feeds]
        ret = _return(module)
        self.outputs = [[env[v] for v in ret.operands] for env in self.envs]
        self.feeds = [list(f) for f in feeds]

    def clone(self) -> Candidate:
        """A fresh copy of the float module to rewrite and then ``measure``."""
        copy = self.module.clone()
        value_map: dict[SSAValue, SSAValue] = {}
        src, dst = main_func(self.module).body.blocks[0], main_func(copy).body.blocks[0]
        value_map.update(zip(dst.args, src.args))
        for a, b in zip(dst.ops, src.ops):
            value_map.update(zip(a.results, b.results))
        return Candidate(copy, value_map)

    def run(self, cand: Candidate, index: int) -> list[np.ndarray]:
        """The candidate's outputs on feed ``index`` (the unchanged prefix is reused)."""
        src = self.envs[index]
        block = main_func(cand.module).body.blocks[0]
        env: dict[SSAValue, np.ndarray] = {a: src[cand.value_map[a]] for a in block.args}
        prefix = True
        for op in block.ops:
            if isinstance(op, func.ReturnOp):
                return [env[v] for v in op.operands]
            if prefix and _reusable(op, cand.value_map, env):
                for r in op.results:
                    env[r] = src[cand.value_map[r]]
                continue
            prefix = False
            for value, arr in zip(op.results, evaluate_op(op, [env[v] for v in op.operands])):
                env[value] = arr
        raise ValueError("main has no return")

    def error(self, cand: Candidate) -> float:
        """The output error of the candidate (module docstring)."""
        num = den = 0.0
        for i, want in enumerate(self.outputs):
            for y, yq in zip(want, self.run(cand, i)):
                ref = np.asarray(y, np.float64)
                d = np.asarray(yq, np.float64) - ref
                num += float(np.sum(d * d))
                den += float(np.sum(ref * ref))
        if den == 0.0:
            return 0.0 if num == 0.0 else float("inf")
        return float(np.sqrt(num / den))


def _reusable(op: Operation, value_map: dict[SSAValue, SSAValue], env) -> bool:
    return all(r in value_map for r in op.results) and all(v in env for v in op.operands)


def _return(module: ModuleOp) -> func.ReturnOp:
    last = main_func(module).body.blocks[0].last_op
    assert isinstance(last, func.ReturnOp)
    return last


def layer_ids(module: ModuleOp) -> list[int]:
    """Ids (``nn.layer_id``, set by the caller) of the quantizable layers, in order."""
    return [
        int(op.attributes[LAYER_ATTR].value.data)
        for op in layer_candidates(module)
        if isinstance(op.attributes.get(LAYER_ATTR), IntegerAttr)
    ]


def mark_layers(module: ModuleOp, modes: dict[int, str]) -> None:
    """Set ``nn.quant_mode`` on every quantizable layer: ``modes[id]``, else "float"."""
    for op in layer_candidates(module):
        layer = op.attributes.get(LAYER_ATTR)
        lid = int(layer.value.data) if isinstance(layer, IntegerAttr) else -1
        op.attributes[MODE_ATTR] = StringAttr(modes.get(lid, "float"))


def quantized_bytes(module: ModuleOp) -> dict[int, tuple[int, int]]:
    """layer id -> (fp32 bytes, stored bytes) of every quantized compute op."""
    out = {}
    for op in main_func(module).body.blocks[0].ops:
        if isinstance(op, QUANT_COMPUTE) and LAYER_ATTR in op.attributes:
            fp32 = op.attributes.get(FP32_BYTES_ATTR)
            out[int(op.attributes[LAYER_ATTR].value.data)] = (
                int(fp32.value.data) if isinstance(fp32, IntegerAttr) else 0,
                bytes_after(op),
            )
    return out


def sensitivities(
    ref: Reference,
    mode: str,
    quantize: Callable[[ModuleOp], None],
    on_layer: Callable[[int, int], None] | None = None,
) -> list[LayerSensitivity]:
    """The sensitivity of every quantizable layer of ``ref.module`` to ``mode``.

    ``quantize(module)`` rewrites the layers marked with ``nn.quant_mode`` (the quantize
    pass(es) the final compilation will run); ``on_layer(i, n)`` reports progress.
    """
    info = {int(op.attributes[LAYER_ATTR].value.data): op for op in layer_candidates(ref.module)}
    ids = layer_ids(ref.module)
    rows = []
    for i, lid in enumerate(ids):
        if on_layer is not None:
            on_layer(i, len(ids))
        cand = ref.clone()
        mark_layers(cand.module, {lid: mode})
        quantize(cand.module)
        sizes = quantized_bytes(cand.module)
        op = info[lid]
        name = op.attributes.get("nn.name") or op.attributes.get("onnx.name")
        label = name.data if isinstance(name, StringAttr) else ""
        if lid not in sizes:  # the scheme declined the layer: it stays float
            rows.append(LayerSensitivity(lid, label, op.name, None, 0, 0))
            continue
        fp32, after = sizes[lid]
        rows.append(LayerSensitivity(lid, label, op.name, ref.error(cand), fp32, after))
    return rows


def prepare_reference(
    module: ModuleOp,
    feeds: Sequence[Sequence[np.ndarray]],
    method: str = "minmax",
    samples: int = 4,
) -> Reference:
    """Number the layers (``nn.layer_id`` = op index, unless set), record activation
    ranges from all ``feeds`` unless the module has some, and run the float model on the
    first ``samples`` feeds as the reference."""
    from nnc.passes.calibrate import annotate_ranges
    from nnc.quant.ranges import has_ranges

    for i, op in enumerate(main_func(module).body.blocks[0].ops):
        op.attributes.setdefault(LAYER_ATTR, IntegerAttr(i, i64))
    if not has_ranges(module):
        annotate_ranges(module, feeds, method)
    return Reference(module, list(feeds)[: max(1, samples)])
