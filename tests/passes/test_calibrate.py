"""calibrate: ranges recorded for every float value; each method's range contains 0 and
lies within [min, max]; entropy/percentile clip outliers; the IR's semantics are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import seeds

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_elementwise import ReluOp
from nnc.passes.calibrate import CalibratePass, annotate_ranges
from nnc.passes.pipelines import run_pipeline
from nnc.quant.methods import METHODS, select_range
from nnc.quant.ranges import get_range


@given(seeds, st.sampled_from(METHODS))
def test_method_ranges_contain_zero_and_stay_inside_min_max(seed, method):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(2000) * rng.uniform(0.1, 5) + rng.uniform(-3, 3)).astype(np.float32)
    lo, hi = select_range(method, x)
    assert min(x.min(), 0) <= lo <= 0 <= hi <= max(x.max(), 0)
    if method == "minmax":
        assert (lo, hi) == (min(float(x.min()), 0), max(float(x.max()), 0))


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_outliers_are_clipped(method):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(100_000), [60.0]]).astype(np.float32)
    lo, hi = select_range(method, x)
    assert hi < 30


def _fake_quant_mse(x, lo, hi):
    scale = (hi - lo) / 255
    zp = np.rint(-lo / scale)
    return np.mean(((np.clip(np.rint(x / scale) + zp, 0, 255) - zp) * scale - x) ** 2)


def test_mse_beats_minmax_on_its_criterion():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(10_000), [6.0, 9.0]]).astype(np.float64)
    assert _fake_quant_mse(x, *select_range("mse", x)) <= _fake_quant_mse(
        x, *select_range("minmax", x)
    )
    assert select_range("mse", x)[1] < 9.0


def test_ranges_recorded_and_semantics_unchanged(tmp_path):
    b = GraphBuilder()
    x = b.add_input("x", (1, 3))
    y = b.insert(ReluOp(x))
    module = b.finish([("y", y)])
    data = np.array([[[-1, 2, 0.5]], [[0.25, -4, 3]]], np.float32)
    n = annotate_ranges(module, [[d] for d in data])
    assert n == 2
    block = module.body.block.first_op.body.blocks[0]
    assert get_range(block.args[0]) == (-4.0, 3.0)
    assert get_range(y) == (0.0, 3.0)
    np.testing.assert_array_equal(interpret(module, [data[0]])[0], np.maximum(data[0], 0))
    path = tmp_path / "c.npz"
    np.savez(path, x=data)
    report = run_pipeline(module, f'calibrate{{data="{path}" method=mse}}')
    assert "recorded 2 ranges from 2 batches (mse)" in report.messages("calibrate")


def test_bad_options():
    with pytest.raises(InvalidOptionError, match="unknown method"):
        CalibratePass(method="kl")
    with pytest.raises(InvalidOptionError, match="calibration data"):
        run_pipeline(GraphBuilder().finish([]), 'calibrate{data="/nonexistent.npz"}')
