"""In-place concats (``lower._concat_views``): producers write their slice of the concat
buffer, no concat step; the compiled result still equals the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_testlib import ModelBuilder, load_so, run_lib

from nnc.backends.llvm import build, write_artifact
from nnc.backends.llvm.lower import lower_module
from nnc.ir import ops_elementwise as oe
from nnc.ir import ops_shape as osh
from nnc.ir.interpret import interpret


def _fire(hw: int, squeeze: int, expand: int, *, as_output: bool, reuse: bool = False):
    g = ModelBuilder(7)
    x = g.add_input("x", (1, 8, hw, hw))
    s = g.conv(x, squeeze, 1, act="relu")
    a = g.conv(s, expand, 1, act="relu")
    b = g.conv(s, expand, 3, act="relu")
    y = g.insert(osh.ConcatOp(a, b, axis=1))
    if reuse:  # ``a`` also read elsewhere: the concat must stay a copy
        y = g.insert(oe.AddOp(y, g.insert(osh.ConcatOp(a, a, axis=1))))
    if not as_output:
        y = g.insert(oe.ReluOp(g.conv(y, 4, 1)))
    return g.finish([("y", y)])


def _emitters(module) -> list[str]:
    return [s.kernel.emitter for s in lower_module(module).steps]


@pytest.mark.parametrize(
    "hw, expand, as_output, reuse, in_place",
    [
        (8, 16, False, False, True),  # slices 64-byte aligned: no concat step
        (8, 16, True, False, True),  # the concat buffer is the model output
        (3, 3, False, False, False),  # second slice at 108 bytes: kept
        (8, 16, False, True, False),  # an operand with another reader: kept
    ],
)
def test_concat_in_place(hw, expand, as_output, reuse, in_place, tmp_path):
    module = _fire(hw, 4, expand, as_output=as_output, reuse=reuse)
    kinds = _emitters(module)
    assert ("concat" not in kinds) == in_place
    views = [b for s in lower_module(module).steps for b in s.outputs if b.kind == "view"]
    assert bool(views) == in_place
    result = build(module)
    lib = load_so(write_artifact(result, tmp_path / "lib.so", "so"))
    x = np.random.default_rng(1).standard_normal((1, 8, hw, hw)).astype(np.float32)
    rc, (got,) = run_lib(lib, "nnc", [x], [o.shape for o in result.outputs])
    assert rc == 0
    (want,) = interpret(module, [x])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
