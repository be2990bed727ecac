"""-O pipelines and pipeline specs: parsing, one-line errors, reports, end-to-end numerics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import count, rand, seeds, text

from nnc.errors import InvalidOptionError
from nnc.ir import DYNAMIC, GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import BatchNormOp, ConvOp, GemmOp, GlobalAvgPoolOp
from nnc.ir.ops_elementwise import AddOp, MulOp, ReluOp, UnaryOp
from nnc.ir.ops_shape import ReshapeOp
from nnc.passes import PASSES, PassReport
from nnc.passes.fold_constants import FoldConstantsPass
from nnc.passes.pipelines import PIPELINES, parse_pipeline_spec, pipeline_for_level, run_pipeline
from nnc.passes.specialize_shapes import SpecializeShapesPass


def small_resnet(rng, channels: int, classes: int):
    """conv-bn-scale-relu, conv-bn (+ skip) relu, global pool, flatten, gemm; dynamic batch."""
    b = GraphBuilder()
    x = b.add_input("x", (DYNAMIC, channels, 5, 5))

    def conv_bn(v):
        c = b.insert(
            ConvOp(
                v, b.constant(rand(rng, (channels, channels, 3, 3))), None, None, pads=(1, 1, 1, 1)
            )
        )
        stats = [
            rand(rng, channels),
            rand(rng, channels),
            rand(rng, channels),
            rand(rng, channels, 0.1, 2),
        ]
        return b.insert(BatchNormOp(c, *(b.constant(s) for s in stats)))

    h = b.insert(MulOp(conv_bn(x), b.constant(rand(rng, (channels, 1, 1)))))
    h = b.insert(ReluOp(h))
    h = b.insert(ReluOp(b.insert(AddOp(conv_bn(h), x))))
    flat = b.insert(ReshapeOp(b.insert(GlobalAvgPoolOp(h)), shape=(-1, channels)))
    y = b.insert(GemmOp(flat, b.constant(rand(rng, (channels, classes)))))
    return b.finish([("y", b.insert(ReluOp(y)))])


@given(seed=seeds, level=st.sampled_from(sorted(PIPELINES)), batch=st.integers(1, 2))
def test_levels_preserve_values(seed, level, batch):
    rng = np.random.default_rng(seed)
    before = small_resnet(rng, 2, 3)
    after = before.clone()
    report = run_pipeline(after, pipeline_for_level(level, batch=batch))
    xin = rand(rng, (batch, 2, 5, 5))
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-5 * float(np.abs(y0).max() + 1))
    names = [p for i, (p, _) in enumerate(report.lines) if i == 0 or report.lines[i - 1][0] != p]
    assert names == PIPELINES[level].split(",")  # every pass reports, in pipeline order
    if level >= 2:
        assert count(after, BatchNormOp) == 0
    if level >= 2:
        assert count(after, MulOp) == 0  # folded into the first conv
    if level == 3:
        assert count(after, UnaryOp, AddOp) == 0  # all in conv/gemm epilogues


def test_levels_are_nested_and_use_registered_passes():
    previous: set[str] = set()
    for level in sorted(PIPELINES):
        names = set(PIPELINES[level].split(","))
        assert names <= set(PASSES) and previous <= names
        previous = names
    assert pipeline_for_level(0) == "specialize-shapes"
    assert pipeline_for_level(1, batch=8).startswith("specialize-shapes{batch=8},")


def test_spec_parsing_builds_passes_with_options():
    passes = parse_pipeline_spec("fold-constants{max-elements=7},specialize-shapes{batch=2}")
    assert passes == [FoldConstantsPass(max_elements=7), SpecializeShapesPass(batch=2)]
    assert parse_pipeline_spec("") == []


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no-such-pass", "unknown pass 'no-such-pass' (known: "),
        ("dce{x=1}", "pass 'dce' has no option 'x' (options: none)"),
        ("specialize-shapes{batch=two}", "option 'batch' expects int, got 'two'"),
        ("specialize-shapes{batch}", "option 'batch' expects int, got 'nothing'"),
        ("specialize-shapes{batch=-1}", "batch must be >= 1, got -1"),
        ("fold-constants{max-elements=1.5}", "option 'max-elements' expects int, got '1.5'"),
        ("dce{", "bad pass pipeline 'dce{'"),
        ("dce,,cse", "bad pass pipeline 'dce,,cse'"),
    ],
)
def test_bad_specs_raise_one_line_invalid_option_error(spec, message):
    with pytest.raises(InvalidOptionError) as info:
        parse_pipeline_spec(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_spec_runs_no_pass():
    module = small_resnet(np.random.default_rng(0), 2, 2)
    before = text(module)
    with pytest.raises(InvalidOptionError):
        run_pipeline(module, "canonicalize,no-such-pass")
    assert text(module) == before


def test_run_pipeline_fills_the_given_report():
    report = PassReport()
    module = small_resnet(np.random.default_rng(0), 2, 2)
    assert run_pipeline(module, "fold-batchnorm,dce", report) is report
    assert report.messages("fold-batchnorm") == ["folded batch_norm into nn.conv: 2"]
    assert str(report).splitlines()[0] == "fold-batchnorm: folded batch_norm into nn.conv: 2"


def test_integer_literal_is_accepted_for_a_float_option():
    """``margin=1`` means 1.0; an int option still rejects ``1.5``."""
    from nnc.passes.pipelines import parse_pipeline_spec

    (algo,) = parse_pipeline_spec("select-conv-algo{margin=1}")
    assert algo.margin == 1.0 and isinstance(algo.margin, float)
    with pytest.raises(InvalidOptionError, match="'batch' expects int"):
        parse_pipeline_spec("specialize-shapes{batch=1.5}")
