"""Build and inspect model modules.

A model is a ``builtin.module`` holding one ``func.func @main`` whose arguments are the
model inputs and whose returned values are the outputs. The func carries the ONNX names
in attributes ``nn.input_names`` and ``nn.output_names`` (arrays of strings, in order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, FunctionType, ModuleOp, StringAttr
from xdsl.ir import Block, Operation, Region, SSAValue

from nnc.ir.ops_compute import ConstantOp
from nnc.ir.types import tensor_type

INPUT_NAMES = "nn.input_names"
OUTPUT_NAMES = "nn.output_names"


class GraphBuilder:
    """Append ops to a fresh ``main`` function, then ``finish()`` into a module."""

    def __init__(self) -> None:
        self.block = Block()
        self.input_names: list[str] = []

    def add_input(self, name: str, shape: Sequence[int], dtype: str = "f32") -> SSAValue:
        """Declare a model input; returns its SSA value."""
        self.input_names.append(name)
        return self.block.insert_arg(tensor_type(tuple(shape), dtype), len(self.block.args))

    def insert(self, op: Operation) -> SSAValue:
        """Append ``op``; returns its single result."""
        self.block.add_op(op)
        return op.results[0]

    def insert_multi(self, op: Operation) -> list[SSAValue]:
        """Append ``op``; returns all its results."""
        self.block.add_op(op)
        return list(op.results)

    def constant(self, array: np.ndarray) -> SSAValue:
        """Append an ``nn.constant`` holding ``array`` by reference."""
        return self.insert(ConstantOp(value=np.asarray(array)))

    def finish(self, outputs: Sequence[tuple[str, SSAValue]]) -> ModuleOp:
        """Return ``outputs`` (name, value) and wrap everything into a module."""
        values = [v for _, v in outputs]
        self.block.add_op(func.ReturnOp(*values))
        ftype = FunctionType.from_lists([a.type for a in self.block.args], [v.type for v in values])
        fn = func.FuncOp("main", ftype, Region([self.block]))
        set_io_names(fn, self.input_names, [n for n, _ in outputs])
        return ModuleOp([fn])


def set_io_names(fn: func.FuncOp, inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Store the model's input and output names on its main function."""
    fn.attributes[INPUT_NAMES] = ArrayAttr([StringAttr(n) for n in inputs])
    fn.attributes[OUTPUT_NAMES] = ArrayAttr([StringAttr(n) for n in outputs])


def main_func(module: ModuleOp) -> func.FuncOp:
    """The model's ``main`` function (raises ValueError if absent)."""
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == "main":
            return op
    raise ValueError("module has no func.func @main")


def io_names(module: ModuleOp) -> tuple[list[str], list[str]]:
    """(input names, output names) of a model module; defaults arg<i>/out<i>."""
    fn = main_func(module)
    n_in = len(fn.body.blocks[0].args)
    n_out = len(fn.function_type.outputs.data)
    ins = fn.attributes.get(INPUT_NAMES)
    outs = fn.attributes.get(OUTPUT_NAMES)
    in_names = [a.data for a in ins.data] if ins else [f"arg{i}" for i in range(n_in)]
    out_names = [a.data for a in outs.data] if outs else [f"out{i}" for i in range(n_out)]
    return in_names, out_names


def return_op(module: ModuleOp) -> func.ReturnOp:
    """The terminator of ``main``."""
    last = main_func(module).body.blocks[0].last_op
    assert isinstance(last, func.ReturnOp)
    return last


def refresh_signature(module: ModuleOp) -> None:
    """Recompute ``main``'s function type from its block arguments and return values."""
    fn = main_func(module)
    block = fn.body.blocks[0]
    ret = return_op(module)
    fn.function_type = FunctionType.from_lists(
        [a.type for a in block.args], [v.type for v in ret.operands]
    )
