"""quant-sensitivity: a deliberately fragile layer is ranked most sensitive; candidates
reuse the float prefix exactly; the pass only adds attributes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.compiler import load
from nnc.ir.builder import main_func
from nnc.ir.interpret import interpret
from nnc.passes.calibrate import model_feeds
from nnc.passes.pipelines import parse_pipeline_spec, run_pipeline
from nnc.passes.quant_sensitivity import SENSITIVITY_ATTR
from nnc.quant.driver import mixed_spec
from nnc.quant.mixed import apply_with
from nnc.quant.sensitivity import layer_ids, prepare_reference, sensitivities
from nnc.testing.quant_models import fragile_calibration, fragile_mlp


def float_module(model, batch=4):
    module = load(model)
    run_pipeline(module, f"specialize-shapes{{batch={batch}}},fold-constants,fuse-activation,dce")
    return module


@pytest.fixture(scope="module")
def ref():
    module = float_module(fragile_mlp())
    return prepare_reference(module, model_feeds(module, fragile_calibration()))


@pytest.fixture(scope="module")
def apply():
    return apply_with(parse_pipeline_spec(mixed_spec()))


def test_fragile_layer_is_ranked_most_sensitive(ref, apply):
    errors = [s.error for s in sensitivities(ref, "int8", lambda m: apply(m, None))]
    assert len(errors) == 3 and all(e is not None for e in errors)
    assert int(np.argmax(errors)) == 0  # the first gemm carries the outliers
    assert errors[0] > 10 * max(errors[1:]), errors


@settings(max_examples=10, deadline=None)
@given(st.sets(st.integers(0, 2)), st.sampled_from(["int8", "int4-weight"]), st.integers(0, 3))
def test_prefix_reuse_equals_a_full_interpreter_run(ref, apply, chosen, mode, feed):
    """Candidate outputs computed from the cached float prefix equal interpreting the
    whole rewritten module."""
    ids = layer_ids(ref.module)
    cand = ref.clone()
    apply(cand.module, {ids[i]: mode for i in chosen})
    got = ref.run(cand, feed)
    want = interpret(cand.module, ref.feeds[feed])
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_pass_adds_attributes_only(tmp_path):
    np.savez(tmp_path / "c.npz", **fragile_calibration())
    module = float_module(fragile_mlp())
    x = fragile_calibration()["x"][:4]
    before = interpret(module, [x])[0]
    report = run_pipeline(module, f'quant-sensitivity{{data="{tmp_path / "c.npz"}" samples=2}}')
    ops = [op for op in main_func(module).body.blocks[0].ops if op.name == "nn.gemm"]
    values = [op.attributes[SENSITIVITY_ATTR].value.data for op in ops]
    assert len(values) == 3 and values[0] == max(values)
    assert len(report.messages("quant-sensitivity")) == 3
    np.testing.assert_array_equal(interpret(module, [x])[0], before)
