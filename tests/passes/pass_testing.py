"""Helpers for the pass property tests: seeded random models, op counts, error bounds.

Imported by the test modules of this folder (pytest puts the folder on sys.path).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnc.ir.dialect import make_context
from nnc.ir.interpret import conv2d, interpret
from nnc.ir.text import module_to_text

#: Unit roundoff of float32.
U = 2.0**-24

seeds = st.integers(0, 2**32 - 1)


def apply_pass(module: ModuleOp, pass_: ModulePass) -> ModuleOp:
    """``pass_`` applied to a clone of ``module`` (verified); ``module`` is untouched."""
    after = module.clone()
    pass_.apply(make_context(), after)
    after.verify()
    return after


def count(module: ModuleOp, *op_types: type) -> int:
    """Number of ops of the given types in ``module``."""
    return sum(1 for op in module.walk() if isinstance(op, op_types))


def text(module: ModuleOp) -> str:
    return module_to_text(module)


def rand(rng: np.random.Generator, shape, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def run_both(before: ModuleOp, after: ModuleOp, inputs: list) -> tuple[list, list]:
    return interpret(before, inputs), interpret(after, inputs)


def assert_within(before: np.ndarray, after: np.ndarray, bound: np.ndarray) -> None:
    """Elementwise |after - before| <= bound, with the worst ratio in the message."""
    err = np.abs(after.astype(np.float64) - before.astype(np.float64))
    bound = np.broadcast_to(bound, err.shape)
    ok = err <= bound
    if not ok.all():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(f"error {err[i]:.3g} > bound {bound[i]:.3g} at {i}")


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes and window properties of one random 2-D convolution."""

    n: int
    c: int
    h: int
    w: int
    m: int
    k: int
    stride: int
    pad: int
    group: int

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.m, self.c // self.group, self.k, self.k)

    def props(self) -> dict:
        p = self.pad
        return {"strides": (self.stride,) * 2, "pads": (p, p, p, p), "group": self.group}

    def abs_conv(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """|W| (*) |X| in float64: the magnitude every conv error bound scales with."""
        return conv2d(np.abs(x), np.abs(w), (self.stride,) * 2, (self.pad,) * 4, (1, 1), self.group)


@st.composite
def conv_geometries(draw) -> ConvGeometry:
    group = draw(st.sampled_from([1, 1, 2]))
    k = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 1))
    return ConvGeometry(
        n=draw(st.integers(1, 2)),
        c=group * draw(st.integers(1, 3)),
        h=draw(st.integers(max(1, k - 2 * pad), 6)),
        w=draw(st.integers(max(1, k - 2 * pad), 6)),
        m=group * draw(st.integers(1, 3)),
        k=k,
        stride=draw(st.integers(1, 2)),
        pad=pad,
        group=group,
    )
