"""Give every tensor a static shape by fixing the batch size of ``main``'s inputs.

Before::

    func.func @main(%x: tensor<?x3x8x8xf32>) -> tensor<?x4x8x8xf32> {
      %y = "nn.conv"(%x, %w) ... : (tensor<?x3x8x8xf32>, ...) -> tensor<?x4x8x8xf32>

After (``specialize-shapes{batch=2}``)::

    func.func @main(%x: tensor<2x3x8x8xf32>) -> tensor<2x4x8x8xf32> {
      %y = "nn.conv"(%x, %w) ... : (tensor<2x3x8x8xf32>, ...) -> tensor<2x4x8x8xf32>

A dynamic dimension 0 of an input becomes ``batch``; then every op's result types are
recomputed in order from its operands with the op's own type inference
(``NNOp.infer``), and ``main``'s signature is refreshed. The backend needs static
shapes, so this runs at every -O level.

Preconditions: the only dynamic input dimensions are dimensions 0; every op re-infers
under the new shapes (a reshape that hard-codes batch 1 does not infer with batch 2).
Otherwise the pass raises a one-line ``NNCError`` naming the input or op, and the IR is
unchanged: all new types are computed before any is written.

Numeric contract: exact (types only; no op changes).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Attribute, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from nnc.errors import InvalidOptionError, UnsupportedOpError
from nnc.ir.builder import io_names, main_func, refresh_signature
from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec
from nnc.ir.types import DYNAMIC
from nnc.passes.report import record


def _input_types(module: ModuleOp, batch: int) -> list[Attribute]:
    """New types of main's arguments (dynamic dim 0 -> batch); raises if another is dynamic."""
    names, _ = io_names(module)
    types = []
    for name, arg in zip(names, main_func(module).body.blocks[0].args, strict=True):
        spec = TensorSpec.of(arg)
        for axis, dim in enumerate(spec.shape):
            if dim == DYNAMIC and axis != 0:
                raise UnsupportedOpError(
                    f"specialize-shapes: input '{name}' has dynamic dimension {axis}; "
                    "only the batch dimension (0) can be specialized"
                )
        shape = tuple(batch if d == DYNAMIC else d for d in spec.shape)
        types.append(TensorSpec(shape, spec.dtype).to_type())
    return types


def _result_types(module: ModuleOp, arg_types: list[Attribute]) -> dict[SSAValue, Attribute]:
    """Every value whose type changes -> its new type, computed without touching the IR."""
    block = main_func(module).body.blocks[0]
    new: dict[SSAValue, Attribute] = {
        a: t for a, t in zip(block.args, arg_types, strict=True) if a.type != t
    }
    for op in block.ops:
        if not any(v in new for v in op.operands):
            continue
        if not isinstance(op, NNOp):
            if op.results:
                raise UnsupportedOpError(f"specialize-shapes: cannot re-infer types of {op.name}")
            continue
        specs = [TensorSpec.of(new.get(v, v.type)) for v in op.operands]
        try:
            inferred = type(op).infer(specs, op.props_dict())
        except ShapeError as err:
            raise UnsupportedOpError(f"specialize-shapes: {op.name}: {err}") from None
        for result, spec in zip(op.results, inferred, strict=True):
            if result.type != spec.to_type():
                new[result] = spec.to_type()
    return new


@dataclass(frozen=True)
class SpecializeShapesPass(ModulePass):
    """Fix the batch size and make every shape static (see module docstring)."""

    name = "specialize-shapes"

    batch: int = 1
    """Size given to a dynamic dimension 0 of each model input."""

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise InvalidOptionError(f"{self.name}: batch must be >= 1, got {self.batch}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        try:
            main_func(op)
        except ValueError:
            record(self.name, "no func.func @main: nothing to do")
            return
        new_types = _result_types(op, _input_types(op, self.batch))
        for value, new_type in new_types.items():
            Rewriter.replace_value_with_new_type(value, new_type)
        refresh_signature(op)
        changed = len(new_types)
        record(
            self.name,
            f"batch={self.batch}: retyped {changed} values" if changed else "nothing to do",
        )
