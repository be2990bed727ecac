"""Lowering nn ops to kernel steps: aliasing, dead ops, static shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_testlib import ModelBuilder, reshape_chain, resnet18

from nnc.backends.llvm import build
from nnc.backends.llvm.lower import kernel_spec_for, lower_module
from nnc.backends.llvm.program import KernelSpec
from nnc.errors import NNCError, UnsupportedOpError
from nnc.ir import DYNAMIC
from nnc.ir import ops_elementwise as oe
from nnc.ir import ops_shape as osh


def test_reshapes_alias_their_operand():
    model = lower_module(reshape_chain())
    kinds = [s.kernel.emitter for s in model.steps]
    # mul, transpose, slice, pad; "flat" is a reshape of the transpose: computed in place.
    assert kinds == ["binary", "transpose", "slice", "pad"]
    assert [b.kind for b in model.steps[1].outputs] == ["output"]
    assert model.steps[1].outputs[0].label == "flat"


def test_dead_ops_are_skipped():
    g = ModelBuilder(0)
    x = g.add_input("x", (4,))
    g.insert(oe.TanhOp(x))  # unused
    g.weight(1000)  # unused weight
    y = g.insert(oe.ReluOp(x))
    model = lower_module(g.finish([("y", y)]))
    assert [s.kernel.emitter for s in model.steps] == ["unary"] and model.weights == []


def test_dynamic_shape_is_rejected():
    g = ModelBuilder(0)
    x = g.add_input("x", (DYNAMIC, 4))
    module = g.finish([("y", g.insert(oe.ReluOp(x)))])
    with pytest.raises(NNCError, match="dynamic shape.*specialize"):
        build(module)


def test_non_float_tensors_are_rejected():
    g = ModelBuilder(0)
    x = g.add_input("x", (4,), dtype="i8")
    module = g.finish([("y", g.insert(oe.ReluOp(x)))])
    with pytest.raises(UnsupportedOpError, match="float32"):
        build(module)


def test_kernel_specs_are_hashable_and_equal_by_value():
    g = ModelBuilder(0)
    x = g.add_input("x", (2, 3))
    a = g.insert(osh.TransposeOp(x, perm=(1, 0)))
    b = g.insert(osh.TransposeOp(x, perm=[1, 0]))
    assert kernel_spec_for(a.owner) == kernel_spec_for(b.owner)
    assert KernelSpec.make("copy", size=np.int64(3)) == KernelSpec.make("copy", size=3)


def test_resnet18_lowering_shares_kernels():
    model = lower_module(resnet18(size=64, classes=10))
    assert len(model.kernel_specs()) < len(model.steps)
    assert all(s.kernel.emitter != "copy" for s in model.steps)
