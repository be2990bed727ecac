"""select-conv-algo: forced, cost-model and measured choices of the conv algorithm."""

from __future__ import annotations

import numpy as np
import pytest
from pass_testing import U, apply_pass, assert_within, count, rand, text
from test_winograd_conv import conv_model, plane_magnitude

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import ConvOp
from nnc.ir.ops_conv_algos import FFTConvOp, WinogradConvOp
from nnc.passes._conv_algos import ALGO_ATTR, ConvShape, estimate_cost
from nnc.passes.pipelines import run_pipeline
from nnc.passes.select_conv_algo import SelectConvAlgoPass, candidates


def two_convs(seed: int = 0):
    """A 3x3 stride-1 conv (all algorithms apply) then a 3x3 stride-2 conv (direct only)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.add_input("x", (1, 4, 8, 8))
    y = b.insert(ConvOp(x, b.constant(rand(rng, (6, 4, 3, 3))), None, None, pads=(1,) * 4))
    w2 = b.constant(rand(rng, (5, 6, 3, 3)))
    z = b.insert(ConvOp(y, w2, None, None, strides=(2, 2), pads=(1,) * 4, activation="relu"))
    return b.finish([("z", z)])


def _ops(module) -> tuple[int, int, int]:
    return count(module, ConvOp), count(module, WinogradConvOp), count(module, FFTConvOp)


@pytest.mark.parametrize(
    "algo,ops",
    [("direct", (2, 0, 0)), ("im2col", (2, 0, 0)), ("winograd2", (1, 1, 0)),
     ("winograd4", (1, 1, 0)), ("fft", (1, 0, 1))],
)  # fmt: skip
def test_forced_algorithms(algo, ops):
    before = two_convs()
    after = apply_pass(before, SelectConvAlgoPass(algo=algo))
    assert _ops(after) == ops
    convs = [op for op in after.walk() if isinstance(op, ConvOp)]
    want = algo if algo in ("direct", "im2col") else "direct"
    assert [op.attributes[ALGO_ATTR].data for op in convs] == [want] * len(convs)
    x = rand(np.random.default_rng(1), (1, 4, 8, 8))
    y0, y1 = interpret(before, [x])[0], interpret(after, [x])[0]
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-5)


def test_forced_algorithm_reports_where_it_does_not_apply():
    report = run_pipeline(two_convs(), "select-conv-algo{algo=winograd4}")
    lines = report.messages("select-conv-algo")
    assert "direct: 1" in lines and "winograd4: 1" in lines
    assert "not applied (1x): winograd4: stride != 1; kept direct" in lines
    assert any(line.startswith("multiplications ") for line in lines)


def test_candidates():
    module = two_convs()
    first, second = [op for op in module.walk() if isinstance(op, ConvOp)]
    assert candidates(first) == ["direct", "im2col", "winograd2", "winograd4", "fft"]
    assert candidates(second) == ["direct", "im2col"]


def test_cost_model_prefers_winograd_on_resnet_layers_and_not_on_tiny_planes():
    for c, hw in ((64, 56), (128, 28), (256, 14)):
        s = ConvShape(1, c, hw, hw, c, 3, 3, hw, hw, (1, 1, 1, 1))
        costs = {a: estimate_cost(s, a) for a in ("direct", "winograd2", "winograd4")}
        assert min(costs, key=costs.get) != "direct", (c, hw, costs)
    tiny = ConvShape(1, 512, 2, 2, 512, 3, 3, 2, 2, (1, 1, 1, 1))
    assert estimate_cost(tiny, "winograd4") > estimate_cost(tiny, "direct")
    big_kernel = ConvShape(1, 64, 28, 28, 64, 11, 11, 28, 28, (5, 5, 5, 5))
    assert estimate_cost(big_kernel, "fft") < 0.75 * estimate_cost(big_kernel, "direct")
    resnet_3x3 = ConvShape(1, 64, 56, 56, 64, 3, 3, 56, 56, (1, 1, 1, 1))
    assert estimate_cost(resnet_3x3, "fft") > 2 * estimate_cost(resnet_3x3, "direct")


def test_auto_stays_within_the_chosen_algorithms_bound():
    rng = np.random.default_rng(3)
    w = rand(rng, (32, 32, 3, 3))
    before = conv_model((1, 32, 16, 16), w)
    after = apply_pass(before, SelectConvAlgoPass(algo="auto"))
    assert count(after, ConvOp) + count(after, WinogradConvOp) + count(after, FFTConvOp) == 1
    x = rand(rng, (1, 32, 16, 16), -2, 2)
    y0, y1 = interpret(before, [x])[0], interpret(after, [x])[0]
    assert_within(y0, y1, 64 * U * plane_magnitude(x, w, (1,) * 4) + 4 * U * np.abs(y0))


def test_autotune_measures_and_reports():
    module = conv_model((1, 4, 6, 6), np.ones((4, 4, 3, 3), np.float32))
    report = run_pipeline(module, "select-conv-algo{algo=autotune}")
    lines = report.messages("select-conv-algo")
    assert any(
        line.startswith("conv 4->4 3x3 on 6x6: ") and "(ms: direct" in line for line in lines
    )


def test_select_is_idempotent():
    once = apply_pass(two_convs(), SelectConvAlgoPass(algo="im2col"))
    assert text(apply_pass(once, SelectConvAlgoPass(algo="winograd2"))) == text(once)


def test_bad_options():
    with pytest.raises(InvalidOptionError, match="unknown algo 'winograd3'"):
        SelectConvAlgoPass(algo="winograd3")
    with pytest.raises(InvalidOptionError, match="margin"):
        SelectConvAlgoPass(margin=0.0)
