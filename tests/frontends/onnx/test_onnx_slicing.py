"""ONNX Slice, Split, Concat, Pad and Gather on run-time data: interpreter == onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from nnc.errors import UnsupportedOpError
from nnc.frontends.onnx import import_onnx
from nnc.testing.oracle import make_model, single_node_model

SHAPES = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
BIG = 2**63 - 1


def _spellings(draw, i: int, d: int, big: int):
    """An ONNX slice bound equal to position ``i`` (0 <= i <= d, or -1 meaning "before 0")
    spelled as a plain, negative or clamped index."""
    options = [i] if 0 <= i < d else []
    if 0 <= i < d:
        options.append(i - d)
    if i >= d:
        options += [d, d + 2, big]
    if i < 0:
        options += [-d - 1, -d - 3, -big]
    return draw(st.sampled_from(options))


@st.composite
def slice_cases(draw):
    """Non-empty slices with negative indices, clamped bounds and negative steps."""
    shape = draw(SHAPES)
    axes = draw(
        st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True)
    )
    starts, ends, steps = [], [], []
    for a in axes:
        d = shape[a]
        lo = draw(st.integers(0, d - 1))
        hi = draw(st.integers(lo, d - 1))
        step = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
        if step > 0:
            starts.append(_spellings(draw, lo, d, BIG))
            ends.append(_spellings(draw, hi + 1, d, BIG))
        else:
            starts.append(_spellings(draw, hi, d, BIG))
            ends.append(_spellings(draw, lo - 1, d, BIG))
        steps.append(step)
    neg_axes = [a - len(shape) if draw(st.booleans()) else a for a in axes]
    return shape, starts, ends, neg_axes, steps


@given(
    slice_cases(), st.sampled_from([9, 10, 11, 13, 17, 21]), st.booleans(), st.integers(0, 2**16)
)
def test_slice(check, randn, case, opset, omit_optional, seed):
    shape, starts, ends, axes, steps = case
    if opset < 10:
        axes = [a % len(shape) for a in axes]  # opset 9: axes >= 0, no steps
        model = single_node_model(
            "Slice", [("x", shape)], opset=opset, starts=starts, ends=ends, axes=axes
        )
    else:
        inputs = [("x", shape), ("s", np.array(starts)), ("e", np.array(ends))]
        if not (omit_optional and axes == list(range(len(axes))) and all(s == 1 for s in steps)):
            inputs += [("a", np.array(axes)), ("t", np.array(steps))]
        model = single_node_model("Slice", inputs, opset=opset)
    check(model, {"x": randn(seed, *shape)})


@st.composite
def split_cases(draw):
    shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    dim = shape[axis]
    kind = draw(st.sampled_from(["sizes", "equal", "num_outputs"]))
    opset = draw(st.sampled_from([11, 13, 18, 21] if kind == "num_outputs" else [9, 11, 13, 18]))
    if kind == "num_outputs" and opset < 18:
        kind = "equal"
    if kind == "equal" and opset >= 18:  # opset 18 requires split or num_outputs
        kind = "num_outputs"
    if kind == "sizes":
        cuts = (
            sorted(draw(st.lists(st.integers(1, dim - 1), max_size=3, unique=True)))
            if dim > 1
            else []
        )
        sizes = np.diff([0, *cuts, dim]).tolist()
        return shape, axis, opset, kind, sizes
    divisors = [n for n in range(1, dim + 1) if dim % n == 0]
    uneven = [n for n in range(1, dim + 1) if (n - 1) * -(-dim // n) < dim]
    n = draw(st.sampled_from(divisors if kind == "equal" else uneven))
    return shape, axis, opset, kind, n


@given(split_cases(), st.integers(0, 2**16))
def test_split(check, randn, case, seed):
    shape, axis, opset, kind, arg = case
    inputs, attrs = [("x", shape)], {"axis": axis}
    if axis < 0 and opset < 11:
        attrs["axis"] = axis % len(shape)
    if kind == "sizes" and opset < 13:
        attrs["split"] = arg
    elif kind == "sizes":
        inputs.append(("s", np.array(arg, np.int64)))
    elif kind == "num_outputs":
        attrs["num_outputs"] = arg
    n_out = len(arg) if kind == "sizes" else arg
    model = single_node_model("Split", inputs, n_outputs=n_out, opset=opset, **attrs)
    check(model, {"x": randn(seed, *shape)})


@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), st.data(), st.integers(0, 2**16)
)
def test_concat(check, randn, shape, data, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = data.draw(st.integers(1, 4))
    inputs, feeds = [], {}
    for i in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        arr = randn(seed + i, *s)
        if i > 0 and data.draw(st.booleans()):  # constant (initializer) operand
            inputs.append((f"c{i}", arr))
        else:
            inputs.append((f"x{i}", tuple(s)))
            feeds[f"x{i}"] = arr
    check(single_node_model("Concat", inputs, opset=13, axis=axis), feeds)


@st.composite
def pad_cases(draw):
    shape = draw(st.lists(st.integers(2, 4), min_size=1, max_size=4).map(tuple))
    mode = draw(st.sampled_from(["constant", "reflect", "edge"]))
    lo = -1 if mode == "constant" else 0
    hi = 1 if mode == "reflect" else 3  # reflect pads must stay below the dim
    pads = [draw(st.integers(lo, hi)) for _ in range(2 * len(shape))]
    opset = draw(st.sampled_from([9, 11, 13, 18, 21]))
    return shape, mode, pads, opset, draw(st.floats(-2, 2, width=32))


@given(pad_cases(), st.booleans(), st.integers(0, 2**16))
def test_pad(check, randn, case, use_axes, seed):
    shape, mode, pads, opset, value = case
    if opset < 11:
        pads = [max(p, 0) for p in pads]
        model = single_node_model(
            "Pad", [("x", shape)], opset=opset, mode=mode, pads=pads, value=value
        )
    else:
        inputs = [("x", shape), ("p", np.array(pads, np.int64))]
        inputs.append(("v", np.array(value, np.float32)) if mode == "constant" else ("", None))
        if opset >= 18 and use_axes:  # pad only the last axis, named negatively
            rank = len(shape)
            inputs[1] = ("p", np.array([pads[rank - 1], pads[-1]], np.int64))
            inputs.append(("a", np.array([-1], np.int64)))
        model = single_node_model("Pad", inputs, opset=opset, mode=mode)
    check(model, {"x": randn(seed, *shape)})


@pytest.mark.parametrize(
    "indices,axis",
    [
        (np.array(1), 0),
        (np.array(-1), 2),
        (np.array([0, 2]), 1),
        (np.array([3, 2, 1]), 2),
        (np.array([1]), -1),
    ],
)
def test_gather_runtime_data_constant_indices(check, randn, indices, axis):
    model = single_node_model(
        "Gather", [("x", (3, 4, 5)), ("i", indices.astype(np.int64))], opset=13, axis=axis
    )
    check(model, {"x": randn(0, 3, 4, 5)})


def test_gather_scattered_indices_is_unsupported():
    model = single_node_model("Gather", [("x", (5,)), ("i", np.array([0, 1, 3]))], opset=13)
    with pytest.raises(UnsupportedOpError, match="gather0.*not evenly spaced"):
        import_onnx(model)


def test_split_then_concat_round_trip(check, randn):
    nodes = [
        helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1),
        helper.make_node("Concat", ["c", "a", "b"], ["y"], axis=1),
    ]
    check(make_model(nodes, {"x": (2, 6)}, ["y"], opset=13), {"x": randn(0, 2, 6)})
