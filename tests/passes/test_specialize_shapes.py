"""specialize-shapes: dynamic batch -> static shapes everywhere; values unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, conv_geometries, rand, seeds, text

from nnc.errors import InvalidOptionError, UnsupportedOpError
from nnc.ir import DYNAMIC, GraphBuilder
from nnc.ir.builder import main_func
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp, GemmOp, GlobalAvgPoolOp
from nnc.ir.ops_elementwise import ReluOp
from nnc.ir.ops_shape import ReshapeOp
from nnc.ir.types import is_static, shape_of
from nnc.passes.pipelines import run_pipeline
from nnc.passes.specialize_shapes import SpecializeShapesPass


def dynamic_cnn(geom, rng, classes: int):
    b = GraphBuilder()
    x = b.add_input("x", (DYNAMIC,) + geom.x_shape[1:])
    c = b.insert(ConvOp(x, b.constant(rand(rng, geom.w_shape)), None, None, **geom.props()))
    p = b.insert(GlobalAvgPoolOp(b.insert(ReluOp(c))))
    flat = b.insert(ReshapeOp(p, shape=(-1, geom.m)))
    return b.finish([("y", b.insert(GemmOp(flat, b.constant(rand(rng, (geom.m, classes))))))])


def all_static(module) -> bool:
    values = [v for op in module.walk() for v in op.results] + list(
        main_func(module).body.blocks[0].args
    )
    fn_type = main_func(module).function_type
    return all(is_static(shape_of(v)) for v in values) and all(
        is_static(t.get_shape()) for t in (*fn_type.inputs.data, *fn_type.outputs.data)
    )


@given(geom=conv_geometries(), seed=seeds, batch=st.integers(1, 3), classes=st.integers(1, 4))
def test_batch_becomes_static_and_values_are_unchanged(geom, seed, batch, classes):
    rng = np.random.default_rng(seed)
    before = dynamic_cnn(geom, rng, classes)

    after = apply_pass(before, SpecializeShapesPass(batch=batch))

    assert not all_static(before) and all_static(after)
    assert shape_of(main_func(after).function_type.outputs.data[0]) == (batch, classes)
    xin = rand(rng, (batch,) + geom.x_shape[1:])
    np.testing.assert_array_equal(interpret(before, [xin])[0], interpret(after, [xin])[0])


def test_static_model_is_left_unchanged():
    b = GraphBuilder()
    module = b.finish([("y", b.insert(ReluOp(b.add_input("x", (2, 3)))))])
    assert text(apply_pass(module, SpecializeShapesPass(batch=4))) == text(module)


def test_dynamic_non_batch_dimension_is_an_error_and_ir_is_untouched():
    b = GraphBuilder()
    module = b.finish([("y", b.insert(ReluOp(b.add_input("x", (DYNAMIC, DYNAMIC)))))])
    before = text(module)
    with pytest.raises(UnsupportedOpError, match="input 'x' has dynamic dimension 1"):
        SpecializeShapesPass().apply(None, module)
    assert text(module) == before


def test_op_that_does_not_reinfer_is_an_error_and_ir_is_untouched():
    b = GraphBuilder()
    x = b.add_input("x", (DYNAMIC, 6))
    module = b.finish([("y", b.insert(ReshapeOp(x, shape=(4, -1))))])  # 3 * 6 % 4 != 0
    before = text(module)
    with pytest.raises(UnsupportedOpError, match="nn.reshape"):
        run_pipeline(module, "specialize-shapes{batch=3}")
    assert text(module) == before


def test_batch_must_be_positive():
    with pytest.raises(InvalidOptionError, match="batch must be >= 1, got 0"):
        SpecializeShapesPass(batch=0)
