"""Mixed precision: choose per layer int8 static, int4 weight-only or float, to meet an
output-error budget and/or a weight-size budget.

Contract (the error is the output error of ``nnc/quant/sensitivity.py``, measured in the
interpreter on the evaluation feeds; sizes are the module's total weight bytes):

1. Sensitivity: each quantizable layer is quantized alone with int8 static; layers the
   scheme declines stay float. Layers are then taken least sensitive first (ties: program
   order).
2. ``max_error`` only: add layers to int8 in that order while the **measured** error of
   the whole partly-quantized model (all chosen layers together, after ``fold-qdq``)
   stays ``<= max_error``; stop at the first layer that would exceed it. A tighter budget
   therefore keeps a superset of float layers. The result's error is ``<= max_error``.
3. ``size_budget`` (bytes) only: add the fewest layers, in the same order, to int8 until
   the weights fit; if all-int8 is still too big, move layers to int4 weight-only (least
   int4-sensitive first) until they fit. If even every layer at int4 does not fit:
   InvalidOptionError naming the smallest reachable size.
4. Both: as 3, then the measured error must be ``<= max_error``, else InvalidOptionError
   naming both numbers.

``apply(module, modes)`` marks every layer (``nn.quant_mode``) and runs the given passes
(the same ones the final compilation runs: quantize int4-weight, quantize int8,
fold-qdq, dce), so what is measured is what is compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xdsl.dialects.builtin import ModuleOp

from nnc.errors import InvalidOptionError
from nnc.quant.sensitivity import LayerSensitivity, Reference, mark_layers, sensitivities
from nnc.report import human_bytes, module_weight_bytes

INT8, INT4 = "int8", "int4-weight"
MIB = 1 << 20


@dataclass
class MixedPlan:
    """The choice: ``modes`` (layer id -> int8 / int4-weight; absent = float), the int8
    sensitivity of every quantizable layer, the measured output error and weight bytes
    of the chosen model, and summary lines for the report."""

    modes: dict[int, str]
    sensitivity: list[LayerSensitivity]
    error: float
    weight_bytes: int
    lines: list[str] = field(default_factory=list)


def choose_plan(
    ref: Reference,
    apply: Callable[[ModuleOp, dict[int, str]], None],
    max_error: float | None = None,
    size_budget: int | None = None,
    sens: list[LayerSensitivity] | None = None,
) -> MixedPlan:
    """Choose per-layer precisions for ``ref.module`` (module docstring); ``sens``: the
    int8 sensitivities when already measured (``sensitivities(ref, "int8", ...)``)."""
    if max_error is None and size_budget is None:
        raise InvalidOptionError("mixed precision needs a max error and/or a size budget")

    if sens is None:
        sens = sensitivities(ref, INT8, _apply_marked(apply))
    order = [s for s in sorted(sens, key=_key) if s.error is not None]
    trial = _Trials(ref, apply)
    if size_budget is None:
        modes: dict[int, str] = {}
        error = 0.0
        for s in order:
            candidate = {**modes, s.layer: INT8}
            e = s.error if not modes else trial.error(candidate)
            if e > max_error:
                break
            modes, error = candidate, e
    else:
        modes = _fit_size(ref, apply, trial, order, size_budget)
        error = trial.error(modes)
        if max_error is not None and error > max_error:
            raise InvalidOptionError(
                f"--size-budget {size_budget / MIB:.4g} MiB needs output error {error:.3g}, "
                f"above --max-error {max_error:g}"
            )
    size = trial.size(modes)
    n8 = sum(m == INT8 for m in modes.values())
    n4 = sum(m == INT4 for m in modes.values())
    lines = [
        f"mixed precision: {n8} int8, {n4} int4-weight, {len(sens) - n8 - n4} float layers; "
        f"output error {error:.3g} on {len(ref.outputs)} feed(s); weights {human_bytes(size)}"
    ]
    return MixedPlan(modes, sens, error, size, lines)


def _key(s: LayerSensitivity) -> tuple[float, int]:
    return (s.error if s.error is not None else float("inf"), s.layer)


def _apply_marked(apply: Callable[[ModuleOp, dict[int, str]], None]) -> Callable:
    """``quantize(module)`` for ``sensitivities``: keep the marks it set."""
    return lambda m: apply(m, None)


class _Trials:
    """Apply a plan to a fresh clone; its weight bytes and measured error (memoized; the
    clone itself is dropped, so memory stays at one model copy)."""

    def __init__(self, ref: Reference, apply: Callable[[ModuleOp, dict[int, str]], None]):
        self.ref, self.apply = ref, apply
        self._size: dict[tuple, int] = {}
        self._error: dict[tuple, float] = {}

    def _run(self, modes: dict[int, str], with_error: bool) -> tuple:
        key = tuple(sorted(modes.items()))
        if key not in self._size or (with_error and key not in self._error):
            cand = self.ref.clone()
            self.apply(cand.module, modes)
            self._size[key] = module_weight_bytes(cand.module)
            if with_error:
                self._error[key] = self.ref.error(cand) if modes else 0.0
        return key

    def size(self, modes: dict[int, str]) -> int:
        return self._size[self._run(modes, False)]

    def error(self, modes: dict[int, str]) -> float:
        return self._error[self._run(modes, True)]


def _fit_size(
    ref: Reference,
    apply,
    trial: _Trials,
    order: Sequence[LayerSensitivity],
    budget: int,
) -> dict[int, str]:
    """The fewest steps (int8 in ``order``, then int4) whose weights fit ``budget``."""
    modes: dict[int, str] = {}
    if trial.size(modes) <= budget:
        return modes
    saved = {s.layer: s.fp32_bytes - s.quant_bytes for s in order}
    base = trial.size({})
    for s in order:  # estimate first (cheap), then check exactly
        modes = {**modes, s.layer: INT8}
        estimate = base - sum(saved[k] for k in modes)
        if estimate <= budget and trial.size(modes) <= budget:
            return modes
    sens4 = sensitivities(ref, INT4, _apply_marked(apply))
    all4 = {s.layer: INT4 for s in sens4 if s.error is not None}
    smallest = trial.size({**modes, **all4})
    if smallest > budget:
        raise InvalidOptionError(
            f"--size-budget {budget / MIB:.4g} MiB cannot be met: the smallest reachable weight "
            f"size is {smallest / MIB:.4g} MiB ({human_bytes(smallest)}, every quantizable "
            "layer int4-weight)"
        )
    for s in sorted(sens4, key=_key):
        if s.error is None:
            continue
        modes = {**modes, s.layer: INT4}
        if trial.size(modes) <= budget:
            return modes
    return modes  # unreachable: all-int4 fits


def apply_with(passes: Sequence) -> Callable[[ModuleOp, dict[int, str] | None], None]:
    """``apply(module, modes)``: mark layers with ``modes`` (None: keep the marks) and run
    ``passes`` (ModulePass objects) on ``module``, silently (no pass report)."""
    from nnc.ir.dialect import make_context
    from nnc.passes.report import PassReport, collecting

    def apply(module: ModuleOp, modes: dict[int, str] | None) -> None:
        if modes is not None:
            mark_layers(module, modes)
        ctx = make_context()
        with collecting(PassReport()):
            for p in passes:
                p.apply(ctx, module)

    return apply
