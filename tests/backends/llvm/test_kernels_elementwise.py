"""Elementwise, normalization, softmax and reduce kernels vs numpy references (JIT)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from llvmlite import ir

from nnc.backends.llvm.jit import JitModule
from nnc.backends.llvm.kernels.activation import ACTIVATIONS
from nnc.backends.llvm.kernels.elementwise import BINARY_OPS, emit_binary, emit_unary
from nnc.backends.llvm.kernels.normalization import emit_batch_norm, emit_layer_norm
from nnc.backends.llvm.kernels.reduce import emit_reduce, reduced_shape
from nnc.backends.llvm.kernels.softmax import emit_softmax

_erf = np.vectorize(math.erf)


def _hard_sigmoid(x, a, b):
    return np.clip(a * x + b, 0, 1)


# kind -> (reference on float64, alpha, beta, input transform keeping x in the domain)
REFS = {
    "none": (lambda x, a, b: x, 0.0, 0.0, None),
    "relu": (lambda x, a, b: np.maximum(x, 0), 0.0, 0.0, None),
    "leaky_relu": (lambda x, a, b: np.where(x < 0, a * x, x), 0.01, 0.0, None),
    "clip": (lambda x, a, b: np.clip(x, a, b), -1.5, 2.5, None),
    "sigmoid": (lambda x, a, b: 1 / (1 + np.exp(-x)), 0.0, 0.0, None),
    "tanh": (lambda x, a, b: np.tanh(x), 0.0, 0.0, None),
    "hard_sigmoid": (_hard_sigmoid, 0.2, 0.5, None),
    "hard_swish": (lambda x, a, b: x * np.clip(x / 6 + 0.5, 0, 1), 0.0, 0.0, None),
    "gelu": (lambda x, a, b: 0.5 * x * (1 + _erf(x / math.sqrt(2))), 0.0, 0.0, None),
    "gelu_tanh": (
        lambda x, a, b: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        0.0,
        0.0,
        None,
    ),
    "erf": (lambda x, a, b: _erf(x), 0.0, 0.0, None),
    "exp": (lambda x, a, b: np.exp(x), 0.0, 0.0, None),
    "log": (lambda x, a, b: np.log(x), 0.0, 0.0, lambda x: np.abs(x) + 0.05),
    "sqrt": (lambda x, a, b: np.sqrt(x), 0.0, 0.0, np.abs),
    "neg": (lambda x, a, b: -x, 0.0, 0.0, None),
    "abs": (lambda x, a, b: np.abs(x), 0.0, 0.0, None),
    "reciprocal": (lambda x, a, b: 1 / x, 0.0, 0.0, lambda x: np.where(x < 0, x - 0.1, x + 0.1)),
    "elu": (lambda x, a, b: np.where(x > 0, x, a * np.expm1(x)), 0.7, 0.0, None),
    "softplus": (lambda x, a, b: np.logaddexp(x, 0), 0.0, 0.0, None),
}

BINARY_REFS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
}

shapes = st.lists(st.integers(1, 7), min_size=0, max_size=4).map(tuple)


def run(emit, inputs, result_shape, **params) -> np.ndarray:
    """Emit one kernel named ``k``, JIT it and run it on ``inputs``; returns the output."""
    module = ir.Module()
    kfn = emit(module, "k", **params)
    jit = JitModule(module)
    out = np.full(result_shape, np.nan, dtype=np.float32)
    args = [np.ascontiguousarray(x, dtype=np.float32) for x in inputs] + [out]
    jit.call_buffers("k", args, kfn.scratch_bytes)
    return out


def assert_close(got: np.ndarray, ref: np.ndarray, rtol: float = 1e-5) -> None:
    """``|got - ref| <= rtol * max|ref|`` elementwise (``max|ref|`` floored at 1e-30)."""
    assert got.shape == ref.shape
    if ref.size == 0:
        return
    scale = max(float(np.nanmax(np.abs(ref))), 1e-30)
    err = np.abs(got.astype(np.float64) - ref)
    assert np.array_equal(np.isnan(got), np.isnan(ref)), "NaN pattern differs"
    assert np.nanmax(err) <= rtol * scale, f"max err {np.nanmax(err)} vs scale {scale}"


def _activation_input(kind: str, x: np.ndarray) -> np.ndarray:
    """``x`` moved into ``kind``'s domain."""
    fix = REFS[kind][3]
    return (fix(x) if fix else x).astype(np.float32)


def test_activation_table_matches_refs():
    assert set(REFS) == set(ACTIVATIONS)


@pytest.mark.parametrize("kind", sorted(REFS))
def test_activation_dense_range(kind):
    """Every activation on a dense grid of [-12, 12] plus tiny values (tanh/softplus paths)."""
    x = np.concatenate([np.linspace(-12, 12, 2001), np.geomspace(1e-6, 0.5, 200)])
    x = _activation_input(kind, np.concatenate([x, -x]))
    ref_fn, a, b, _ = REFS[kind]
    got = run(emit_unary, [x], x.shape, shape=x.shape, kind=kind, alpha=a, beta=b)
    ref = ref_fn(x.astype(np.float64), a, b)
    relative = kind in ("tanh", "erf", "sigmoid", "softplus", "exp", "gelu", "gelu_tanh")
    scale = np.maximum(np.abs(ref), 1e-6 if relative else 1.0)
    # Transcendentals: a few ulp relative to max(|ref|, 1) per element.
    assert np.max(np.abs(got - ref) / scale) <= 2e-6


@pytest.mark.parametrize("kind", ["exp", "sigmoid", "tanh", "erf", "softplus", "gelu_tanh"])
def test_activation_special_values(kind):
    """inf / NaN / overflow / underflow inputs of the inline exp and erf polynomials."""
    x = np.array([np.inf, -np.inf, np.nan, 88.7, 88.8, -87.0, -95.0, -110.0, 0.0], np.float32)
    ref_fn, a, b, _ = REFS[kind]
    got = run(emit_unary, [x], x.shape, shape=x.shape, kind=kind, alpha=a, beta=b)
    with np.errstate(all="ignore"):
        ref = ref_fn(x.astype(np.float64), a, b).astype(np.float32)
    np.testing.assert_allclose(got[:6], ref[:6], rtol=2e-6, atol=1e-38)
    assert np.all(np.abs(got[6:] - ref[6:]) <= 1e-40)


@given(shape=shapes, kind=st.sampled_from(sorted(REFS)), seed=st.integers(0, 2**16))
def test_unary_random(shape, kind, seed):
    x = _activation_input(kind, np.random.default_rng(seed).normal(0, 3, shape))
    ref_fn, a, b, _ = REFS[kind]
    got = run(emit_unary, [x], shape, shape=shape, kind=kind, alpha=a, beta=b)
    assert_close(got, ref_fn(x.astype(np.float64), a, b), 1e-5)


@st.composite
def broadcast_pair(draw):
    """(a_shape, b_shape, out_shape): random numpy-broadcast-compatible operands."""
    dim = st.sampled_from((1, 2, 3, 4, 5, 6, 7, 2, 3, 5, 1, 0))
    out = draw(st.lists(dim, min_size=0, max_size=5).map(tuple))

    def operand():
        dims = [n if draw(st.booleans()) else 1 for n in out]
        return tuple(dims[draw(st.integers(0, len(dims))) :])

    return operand(), operand(), out


@given(shapes=broadcast_pair(), kind=st.sampled_from(sorted(BINARY_OPS)), seed=st.integers(0, 999))
def test_binary_broadcast(shapes, kind, seed):
    a_shape, b_shape, _ = shapes
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2, a_shape).astype(np.float32)
    b = rng.uniform(-2, 2, b_shape).astype(np.float32)
    if kind == "div":
        b = np.where(np.abs(b) < 0.1, 0.5, b).astype(np.float32)
    got = run(
        emit_binary,
        [a, b],
        out_shape,
        a_shape=a_shape,
        b_shape=b_shape,
        out_shape=out_shape,
        kind=kind,
    )
    assert_close(got, BINARY_REFS[kind](a.astype(np.float64), b), 1e-5)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((2, 3, 4, 5), (1, 3, 1, 1)),
        ((2, 3, 4, 5), (3, 1, 1)),
        ((4, 5), ()),
        ((), (4, 5)),
        ((3, 1), (1, 4)),
        ((64,), (64,)),
        ((), ()),
    ],
)
def test_binary_common_cases(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=a_shape).astype(np.float32), rng.normal(size=b_shape).astype(np.float32)
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    got = run(
        emit_binary,
        [a, b],
        out_shape,
        a_shape=a_shape,
        b_shape=b_shape,
        out_shape=out_shape,
        kind="add",
    )
    np.testing.assert_array_equal(got, a + b)


@given(
    shape=st.lists(st.integers(1, 6), min_size=2, max_size=5).map(tuple), seed=st.integers(0, 999)
)
def test_batch_norm(shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.normal(size=shape).astype(np.float32)
    scale, bias, mean = (rng.normal(size=c).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.1, 2, c).astype(np.float32)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    ref = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5)
    ref = ref * scale.reshape(bshape) + bias.reshape(bshape)
    got = run(emit_batch_norm, [x, scale, bias, mean, var], shape, x_shape=shape, epsilon=1e-5)
    assert_close(got, ref.astype(np.float64), 1e-5)


@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    has_bias=st.booleans(),
    seed=st.integers(0, 999),
)
def test_layer_norm(shape, data, has_bias, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(2, 3, shape).astype(np.float32)
    norm_shape = shape[axis:]
    scale, bias = rng.normal(size=norm_shape), rng.normal(size=norm_shape)
    red = tuple(range(axis % len(shape), len(shape)))
    xd = x.astype(np.float64)
    mean = xd.mean(axis=red, keepdims=True)
    ref = (xd - mean) / np.sqrt(((xd - mean) ** 2).mean(axis=red, keepdims=True) + 1e-5) * scale
    inputs = [x, scale] + ([bias] if has_bias else [])
    ref = ref + bias if has_bias else ref
    got = run(
        emit_layer_norm, inputs, shape, shape=shape, axis=axis, epsilon=1e-5, has_bias=has_bias
    )
    assert_close(got, ref, 2e-5)


@given(
    shape=st.lists(st.integers(1, 8), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    log=st.booleans(),
    seed=st.integers(0, 999),
)
def test_softmax(shape, data, log, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(seed).normal(0, 5, shape).astype(np.float32) + 50
    xd = x.astype(np.float64)
    z = xd - xd.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
    ref = z - lse if log else np.exp(z - lse)
    got = run(emit_softmax, [x], shape, shape=shape, axis=axis, log=log)
    assert_close(got, ref, 2e-5)


@given(
    shape=st.lists(st.integers(1, 7), min_size=0, max_size=5).map(tuple),
    data=st.data(),
    keepdims=st.booleans(),
    kind=st.sampled_from(["mean", "sum", "max"]),
    seed=st.integers(0, 999),
)
def test_reduce(shape, data, keepdims, kind, seed):
    axes = sorted(data.draw(st.sets(st.integers(0, len(shape) - 1)))) if shape else []
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    ref_fn = {"mean": np.mean, "sum": np.sum, "max": np.max}[kind]
    ref = ref_fn(x.astype(np.float64), axis=tuple(axes), keepdims=keepdims)
    out_shape = reduced_shape(shape, axes, keepdims)
    assert ref.shape == out_shape
    got = run(emit_reduce, [x], out_shape, shape=shape, axes=axes, keepdims=keepdims, kind=kind)
    assert_close(got, np.asarray(ref), 1e-5)


def test_reduce_empty_extent_and_long_rows():
    x = np.random.default_rng(1).normal(size=(3, 1000)).astype(np.float32)
    got = run(emit_reduce, [x], (3,), shape=(3, 1000), axes=[1], keepdims=False, kind="sum")
    assert_close(got, x.astype(np.float64).sum(axis=1), 1e-5)
    empty = np.zeros((0, 4), np.float32)
    got = run(emit_reduce, [empty], (1, 4), shape=(0, 4), axes=[0], keepdims=True, kind="max")
    assert np.all(got == -np.inf)


@pytest.mark.parametrize("axes", [[0], [1], [0, 2]])
def test_reduce_max_remainders(axes):
    """Max-reductions of every length 1..37 (guards LLVM's maxnum-reduction remainder bug)."""
    rng = np.random.default_rng(7)
    for n in range(1, 38):
        shape = (n, 3, n % 5 + 1)
        x = rng.normal(size=shape).astype(np.float32)
        out_shape = reduced_shape(shape, axes, False)
        got = run(emit_reduce, [x], out_shape, shape=shape, axes=axes, keepdims=False, kind="max")
        np.testing.assert_array_equal(got, x.max(axis=tuple(axes)))
