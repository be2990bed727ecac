"""mixed-precision: the error budget is met and monotone (a tighter budget keeps a
superset of float layers), size budgets, the fragile layer stays float, option errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_quant_sensitivity import apply, float_module, ref  # noqa: F401 (fixtures)

from nnc.compiler import compile_model
from nnc.errors import InvalidOptionError
from nnc.ir.builder import main_func
from nnc.passes.mixed_precision import MixedPrecisionPass
from nnc.passes.pipelines import run_pipeline
from nnc.quant.driver import mixed_spec
from nnc.quant.mixed import choose_plan
from nnc.quant.sensitivity import sensitivities
from nnc.testing.quant_models import fragile_calibration, fragile_mlp


@pytest.fixture(scope="module")
def sens(ref, apply):  # noqa: F811
    return sensitivities(ref, "int8", lambda m: apply(m, None))


@settings(max_examples=12, deadline=None)
@given(st.floats(0.0, 0.3), st.floats(0.0, 0.3))
def test_error_budget_is_met_and_monotone(ref, apply, sens, a, b):  # noqa: F811
    lo, hi = sorted((a, b))
    tight = choose_plan(ref, apply, max_error=lo, sens=sens)
    loose = choose_plan(ref, apply, max_error=hi, sens=sens)
    assert tight.error <= lo and loose.error <= hi
    assert set(tight.modes) <= set(loose.modes)


@pytest.mark.parametrize("budget_kib", [1.5, 2.5, 4.0])
def test_size_budget_is_met(ref, apply, sens, budget_kib):  # noqa: F811
    plan = choose_plan(ref, apply, size_budget=int(budget_kib * 1024), sens=sens)
    assert plan.weight_bytes <= budget_kib * 1024
    if budget_kib < 2.0:  # fp32 ~6.3 KiB, all-int8 ~1.9 KiB: needs int4
        assert "int4-weight" in plan.modes.values()


def test_impossible_size_budget_names_the_smallest_size(ref, apply, sens):  # noqa: F811
    with pytest.raises(InvalidOptionError, match=r"smallest reachable weight size is 0\.00"):
        choose_plan(ref, apply, size_budget=100, sens=sens)


def test_compile_keeps_the_fragile_layer_float():
    comp = compile_model(
        fragile_mlp(),
        quant="mixed",
        calibration=fragile_calibration(),
        max_error=0.05,
        batch=4,
        build=False,
    )
    ops = [op.name for op in main_func(comp.module).body.blocks[0].ops]
    assert ops.count("nn.qgemm") == 2 and ops.count("nn.gemm") == 1
    assert ops.index("nn.gemm") < ops.index("nn.qgemm")
    table = "\n".join(comp.report.quant_lines)
    assert "sensitivity" in table and "float (kept)" in table and "2 int8" in table


def test_pass_in_a_pipeline(tmp_path):
    import numpy as np

    np.savez(tmp_path / "c.npz", **fragile_calibration())
    module = float_module(fragile_mlp())
    run_pipeline(
        module, f'mixed-precision{{data="{tmp_path / "c.npz"}" max-error=0.05}},{mixed_spec()}'
    )
    ops = [op.name for op in main_func(module).body.blocks[0].ops]
    assert ops.count("nn.qgemm") == 2 and ops.count("nn.gemm") == 1


@pytest.mark.parametrize(
    "kw", [{"max_error": -0.1}, {"max_error": float("nan")}, {"size_budget": 0.0}]
)
def test_bad_options(kw):
    with pytest.raises(InvalidOptionError, match="mixed-precision"):
        MixedPrecisionPass(data="c.npz", **kw)


def test_needs_a_budget(tmp_path):
    import numpy as np

    np.savez(tmp_path / "c.npz", **fragile_calibration())
    with pytest.raises(InvalidOptionError, match="max-error and/or size-budget"):
        run_pipeline(float_module(fragile_mlp()), f'mixed-precision{{data="{tmp_path / "c.npz"}"}}')
