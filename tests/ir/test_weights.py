"""The by-reference weight attribute: equality by content, read-only, text round trip."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnc.ir.builder import GraphBuilder
from nnc.ir.ops_elementwise import AddOp
from nnc.ir.text import load_text, module_to_text, parse_module, save_text
from nnc.ir.weights import WeightAttr


def test_equal_content_means_equal_attribute():
    a = WeightAttr.from_array(np.arange(6, dtype=np.float32).reshape(2, 3))
    b = WeightAttr.from_array(np.arange(6, dtype=np.float32).reshape(2, 3))
    c = WeightAttr.from_array(np.arange(6, dtype=np.float32).reshape(3, 2))
    assert a == b and hash(a) == hash(b)
    assert a != c


def test_weights_are_held_by_reference_and_read_only():
    arr = np.ones((1000, 1000), dtype=np.float32)
    attr = WeightAttr.from_array(arr)
    assert np.shares_memory(attr.array, arr)
    with pytest.raises(ValueError):
        attr.array[0, 0] = 2.0
    arr[0, 0] = 1.0  # the caller's own array stays writable


def _model(weight: np.ndarray):
    g = GraphBuilder()
    x = g.add_input("x", weight.shape)
    y = g.insert(AddOp(x, g.constant(weight)))
    return g.finish([("y", y)])


@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(max_dims=3, max_side=5),
        elements=st.floats(-1e6, 1e6, width=32),
    )
)
def test_inline_text_round_trip(weight):
    module = _model(weight)
    parsed = parse_module(module_to_text(module))
    assert parsed.is_structurally_equivalent(module)


def test_sidecar_round_trip(tmp_path):
    weight = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    module = _model(weight)
    path = tmp_path / "m.mlir"
    save_text(module, str(path))
    assert "@" in path.read_text() and (tmp_path / "m.weights.npz").exists()
    assert len(path.read_text()) < 2000  # the big tensor is not inline
    assert load_text(str(path)).is_structurally_equivalent(module)


def test_missing_sidecar_is_a_parse_error():
    text = module_to_text(_model(np.ones((2,), np.float32))).replace(
        '"0x0000803F0000803F"', '"@deadbeef"'
    )
    with pytest.raises(Exception, match="side-car"):
        parse_module(text)
