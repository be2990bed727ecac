"""Data-movement kernels (concat, transpose, slice, pad, copy) vs numpy references (JIT)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from llvmlite import ir

from nnc.backends.llvm import parallel
from nnc.backends.llvm.jit import JitModule
from nnc.backends.llvm.kernels import data_movement
from nnc.backends.llvm.kernels.data_movement import (
    emit_concat,
    emit_copy,
    emit_pad,
    emit_slice,
    emit_transpose,
)

dims = st.sampled_from((1, 2, 3, 4, 5, 7, 1, 2, 3, 6))
shapes = st.lists(dims, min_size=0, max_size=5).map(tuple)
nonscalar_shapes = st.lists(dims, min_size=1, max_size=5).map(tuple)


def run(emit, inputs, result_shape, **params) -> np.ndarray:
    """Emit one kernel named ``k``, JIT it and run it on ``inputs``; returns the output."""
    module = ir.Module()
    kfn = emit(module, "k", **params)
    jit = JitModule(module)
    out = np.full(result_shape, np.nan, dtype=np.float32)
    args = [np.ascontiguousarray(x, dtype=np.float32) for x in inputs] + [out]
    jit.call_buffers("k", args, kfn.scratch_bytes)
    return out


def _rand(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@given(base=nonscalar_shapes, data=st.data(), seed=st.integers(0, 999))
def test_concat(base, data, seed):
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    sizes = data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    ax = axis % len(base)
    shapes_ = [base[:ax] + (n,) + base[ax + 1 :] for n in sizes]
    inputs = [_rand(s, seed + i) for i, s in enumerate(shapes_)]
    ref = np.concatenate(inputs, axis=axis)
    got = run(emit_concat, inputs, ref.shape, shapes=shapes_, axis=axis)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize(
    "shapes_,axis",
    [
        ([(1, 5, 7, 3), (1, 2, 7, 3), (1, 1, 7, 3)], 1),  # runs longer than a block: pieces
        ([(6, 2), (6, 3), (6, 1)], 1),  # short runs: several runs per task
        ([(3, 4, 2), (3, 4, 5)], 2),
    ],
)
def test_concat_task_split(monkeypatch, shapes_, axis):
    """Small ``CONCAT_BLOCK``: long runs are cut into pieces, short ones grouped; the
    (parallel) tasks still write every element once."""
    monkeypatch.setattr(data_movement, "CONCAT_BLOCK", 8)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    inputs = [_rand(s, i) for i, s in enumerate(shapes_)]
    ref = np.concatenate(inputs, axis=axis)
    np.testing.assert_array_equal(
        run(emit_concat, inputs, ref.shape, shapes=shapes_, axis=axis), ref
    )


@given(shape=shapes, data=st.data(), seed=st.integers(0, 999))
def test_transpose(shape, data, seed):
    perm = data.draw(st.permutations(range(len(shape))))
    x = _rand(shape, seed)
    ref = np.ascontiguousarray(x.transpose(perm))
    got = run(emit_transpose, [x], ref.shape, shape=shape, perm=perm)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize(
    ("shape", "perm"),
    [
        ((37, 45), (1, 0)),
        ((3, 17, 33), (0, 2, 1)),
        ((5, 16, 20, 3), (0, 3, 1, 2)),
        ((2, 33, 4, 19), (3, 1, 0, 2)),
        ((64, 64), (1, 0)),
        ((1, 40, 1, 18), (3, 2, 1, 0)),
    ],
)
def test_transpose_tiled(shape, perm):
    """Shapes that take the tiled path, including partial tiles."""
    x = _rand(shape)
    ref = np.ascontiguousarray(x.transpose(perm))
    np.testing.assert_array_equal(run(emit_transpose, [x], ref.shape, shape=shape, perm=perm), ref)


@st.composite
def slice_spec(draw, shape):
    """Normalized (starts, ends, steps) for ``shape``, like ``slice(...).indices(dim)``."""
    starts, ends, steps = [], [], []
    for n in shape:
        bound = st.none() | st.integers(-n - 2, n + 2)
        step = draw(st.sampled_from((1, 1, 1, 2, 3, -1, -2)))
        s, e, stp = slice(draw(bound), draw(bound), step).indices(n)
        starts.append(s)
        ends.append(e)
        steps.append(stp)
    return starts, ends, steps


@given(shape=shapes, data=st.data(), seed=st.integers(0, 999))
def test_slice(shape, data, seed):
    starts, ends, steps = data.draw(slice_spec(shape))
    x = _rand(shape, seed)
    # Normalized ends may be -1 (negative step down to index 0): index with explicit ranges.
    ref = np.ascontiguousarray(x[np.ix_(*map(np.arange, starts, ends, steps))])
    got = run(emit_slice, [x], ref.shape, shape=shape, starts=starts, ends=ends, steps=steps)
    np.testing.assert_array_equal(got, ref)


def test_slice_negative_step_to_start():
    """``x[::-1]`` normalizes to end = -1, which must not be read as 'from the end'."""
    x = _rand((6, 5))
    s = [slice(None, None, -1).indices(6), slice(1, None, 2).indices(5)]
    starts, ends, steps = (list(v) for v in zip(*s, strict=True))
    got = run(emit_slice, [x], (6, 2), shape=(6, 5), starts=starts, ends=ends, steps=steps)
    np.testing.assert_array_equal(got, x[::-1, 1::2])


@given(
    shape=shapes,
    data=st.data(),
    mode=st.sampled_from(["constant", "reflect", "edge"]),
    seed=st.integers(0, 999),
)
def test_pad(shape, data, mode, seed):
    rank = len(shape)
    pads = data.draw(st.lists(st.integers(0, 4), min_size=2 * rank, max_size=2 * rank))
    x = _rand(shape, seed)
    width = list(zip(pads[:rank], pads[rank:], strict=True))
    if rank == 0:  # np.pad rejects 0-d arrays
        ref = x.copy()
    elif mode == "constant":
        ref = np.pad(x, width, mode="constant", constant_values=1.5)
    else:
        ref = np.pad(x, width, mode=mode)
    got = run(emit_pad, [x], ref.shape, shape=shape, pads=pads, mode=mode, value=1.5)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_conv_like(mode):
    """NCHW spatial padding, the common case, plus a pad wider than the dim (reflect)."""
    x = _rand((2, 3, 9, 10))
    pads = (0, 0, 1, 2, 0, 0, 3, 12)
    width = list(zip(pads[:4], pads[4:], strict=True))
    ref = np.pad(x, width, mode=mode)
    got = run(emit_pad, [x], ref.shape, shape=x.shape, pads=pads, mode=mode)
    np.testing.assert_array_equal(got, ref)


def test_pad_empty_input_constant():
    x = np.zeros((0, 3), np.float32)
    got = run(emit_pad, [x], (2, 4), shape=(0, 3), pads=(1, 0, 1, 1), mode="constant", value=-2)
    np.testing.assert_array_equal(got, np.full((2, 4), -2, np.float32))


@pytest.mark.parametrize("size", [0, 1, 7, 1000])
def test_copy(size):
    x = _rand((size,))
    got = run(emit_copy, [x], (size,), size=size)
    np.testing.assert_array_equal(got, x)
