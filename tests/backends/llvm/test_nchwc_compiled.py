"""Models after nchwc-layout, compiled == interpreter (host, threaded, aarch64/qemu)."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_testlib import ModelBuilder, load_so, mobile_block_model, run_lib, small_cnn

from nnc.backends.llvm import build, parallel, write_artifact
from nnc.ir import ops_compute as oc
from nnc.ir import ops_elementwise as oe
from nnc.ir.interpret import interpret
from nnc.ir.ops_blocked import ConvBlockedOp, FromBlockedOp, ToBlockedOp
from nnc.passes.pipelines import run_pipeline


def residual_chain():
    """stem -> conv chain with a residual conv, an elementwise residual add, a sigmoid, a
    stride-2 conv, a depthwise conv, a max pool and channel counts that are not multiples
    of 16."""
    g = ModelBuilder(3)
    x = g.add_input("x", (1, 5, 13, 11))
    a = g.conv(x, 20, 3, act="relu")
    b = g.conv(a, 20, 3, residual=a, act="relu")
    c = g.insert(oe.AddOp(g.conv(b, 20, 1), a))
    d = g.insert(oe.SigmoidOp(c))
    e = g.conv(d, 36, 3, 2, act="relu")
    e = g.conv(e, 36, 3, act="clip", group=36, residual=e)
    f = g.insert(oc.MaxPoolOp(e, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)))
    y = g.conv(f, 9, 1)
    return g.finish([("y", y), ("mid", c)])


def _blocked(module):
    run_pipeline(module, "nchwc-layout,dce")
    assert any(isinstance(op, ConvBlockedOp) for op in module.walk())
    return module


@pytest.mark.parametrize("make", [residual_chain, small_cnn, mobile_block_model])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_matches_interpreter(monkeypatch, tmp_path, make, threads):
    if threads > 1:
        monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)
    ref_module, module = make(), _blocked(make())
    result = build(module, threads=threads)
    lib = load_so(write_artifact(result, tmp_path / "libm.so", "so"))
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(s.shape).astype(np.float32) for s in result.inputs]
    rc, outs = run_lib(lib, "nnc", xs, [o.shape for o in result.outputs])
    assert rc == 0
    for got, want in zip(outs, interpret(ref_module, xs), strict=True):
        scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def test_chain_has_transforms_at_borders_only():
    module = _blocked(residual_chain())
    # x into the stem, two outputs out.
    assert sum(isinstance(op, ToBlockedOp) for op in module.walk()) == 1
    assert sum(isinstance(op, FromBlockedOp) for op in module.walk()) == 2


def test_aarch64_under_qemu(tmp_path):
    from test_aarch64 import _run_under_qemu

    _run_under_qemu(tmp_path, _blocked(residual_chain()), None)
