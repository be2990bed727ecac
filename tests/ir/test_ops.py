"""nn op construction, the shared type inference, and the verifier."""

import numpy as np
import pytest
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import VerifyException

from nnc.ir import DYNAMIC, tensor_type
from nnc.ir.builder import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.nn_base import ShapeError
from nnc.ir.ops_compute import ConvOp, GemmOp, MaxPoolOp
from nnc.ir.ops_elementwise import AddOp, ReluOp
from nnc.ir.ops_shape import ReshapeOp, SliceOp
from nnc.ir.text import module_to_text, parse_module


def test_conv_infers_output_shape_and_round_trips():
    g = GraphBuilder()
    x = g.add_input("x", (1, 3, 17, 17))
    w = g.constant(np.zeros((8, 3, 3, 3), np.float32))
    y = g.insert(ConvOp(x, w, None, None, strides=(2, 2), pads=(1, 1, 1, 1)))
    assert y.type == tensor_type((1, 8, 9, 9))
    module = g.finish([("y", y)])
    module.verify()
    assert parse_module(module_to_text(module)).is_structurally_equivalent(module)


def test_dynamic_batch_propagates():
    g = GraphBuilder()
    x = g.add_input("x", (DYNAMIC, 3, 8, 8))
    y = g.insert(MaxPoolOp(x, kernel=(2, 2), strides=(2, 2)))
    z = g.insert(ReshapeOp(y, shape=(-1, 48)))
    assert y.type == tensor_type((DYNAMIC, 3, 4, 4))
    assert z.type == tensor_type((DYNAMIC, 48))
    assert "tensor<?x48xf32>" in module_to_text(g.finish([("z", z)]))


def test_inconsistent_shapes_are_rejected_at_construction():
    g = GraphBuilder()
    a = g.add_input("a", (2, 3))
    b = g.add_input("b", (4, 5))
    with pytest.raises(ShapeError, match="inner dims"):
        GemmOp(a, b)
    with pytest.raises(ShapeError, match="broadcast"):
        AddOp(a, b)


def test_verifier_catches_a_stale_result_type():
    g = GraphBuilder()
    x = g.add_input("x", (2, 3))
    y = g.insert(ReluOp(x))
    module = g.finish([("y", y)])
    Rewriter.replace_value_with_new_type(y, tensor_type((3, 2)))
    with pytest.raises(VerifyException, match="differ from inferred"):
        module.verify()


def test_slice_with_negative_step_matches_numpy():
    g = GraphBuilder()
    x = g.add_input("x", (2, 7))
    y = g.insert(SliceOp(x, starts=(-1,), ends=(-100,), axes=(1,), steps=(-2,)))
    module = g.finish([("y", y)])
    data = np.arange(14, dtype=np.float32).reshape(2, 7)
    np.testing.assert_array_equal(interpret(module, [data])[0], data[:, ::-2])


def test_maxpool_ceil_mode_shape():
    g = GraphBuilder()
    x = g.add_input("x", (1, 1, 6, 6))
    y = g.insert(MaxPoolOp(x, kernel=(3, 3), strides=(2, 2), ceil_mode=1))
    assert y.type == tensor_type((1, 1, 3, 3))
