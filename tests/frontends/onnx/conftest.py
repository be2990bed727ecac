"""Fixtures for ONNX frontend tests.

``COMPILED`` is the one switch for also running every checked model through
``nnc.compile`` (set it to True once the compiler exists).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from nnc.testing.oracle import check_model

COMPILED = True


@pytest.fixture(scope="session")
def check():
    """``check(model, feeds, rtol=1e-4)``: interpreter (and compiled model) vs onnxruntime."""
    return functools.partial(check_model, compiled=COMPILED)


@pytest.fixture(scope="session")
def randn():
    """``randn(seed, *shape)``: seeded standard-normal float32 array."""

    def make(seed: int, *shape: int) -> np.ndarray:
        return np.asarray(np.random.default_rng(seed).standard_normal(shape), np.float32)

    return make
