"""winograd-conv: 3x3 stride-1 convs become Winograd convs within the declared bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, assert_within, count, rand, seeds, text

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import conv2d, interpret
from nnc.ir.ops_compute import ConvOp
from nnc.ir.ops_conv_algos import WinogradConvOp
from nnc.passes.pipelines import run_pipeline
from nnc.passes.winograd_conv import WinogradConvPass

BETA = {2: 16, 4: 64}  # the docstring's bound


def conv_model(x_shape, w, pads=(1, 1, 1, 1), bias=None, residual=False, act="none", **props):
    b = GraphBuilder()
    x = b.add_input("x", x_shape)
    bias_v = None if bias is None else b.constant(bias)
    conv = ConvOp(x, b.constant(w), bias_v, None, pads=pads, **props)
    if residual:
        r = b.add_input("r", tuple(conv.results[0].type.get_shape()))
        conv = ConvOp(x, b.constant(w), bias_v, r, pads=pads, activation=act, **props)
    elif act != "none":
        conv = ConvOp(x, b.constant(w), bias_v, None, pads=pads, activation=act, **props)
    return b.finish([("y", b.insert(conv))])


def plane_magnitude(x, w, pads) -> np.ndarray:
    """max over each output plane (n, m) of |W| (*) |X|."""
    mag = conv2d(np.abs(x), np.abs(w), (1, 1), pads, (1, 1), 1)
    return mag.max(axis=(2, 3), keepdims=True)


@given(
    seed=seeds,
    tile=st.sampled_from([2, 4]),
    n=st.integers(1, 2),
    c=st.integers(1, 5),
    m=st.integers(1, 5),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    with_bias=st.booleans(),
    residual=st.booleans(),
    act=st.sampled_from(["none", "relu"]),
)
def test_winograd_matches_conv_within_bound(
    seed, tile, n, c, m, h, w, pads, with_bias, residual, act
):
    if h + pads[0] + pads[2] < 3 or w + pads[1] + pads[3] < 3:
        return
    rng = np.random.default_rng(seed)
    wts = rand(rng, (m, c, 3, 3))
    bias = rand(rng, m) if with_bias else None
    before = conv_model((n, c, h, w), wts, pads, bias, residual, act)

    after = apply_pass(before, WinogradConvPass(tile=tile))

    assert (count(after, ConvOp), count(after, WinogradConvOp)) == (0, 1)
    xs = [rand(rng, (n, c, h, w), -2, 2)]
    if residual:
        xs.append(rand(rng, (n, m, h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2)))
    y0, y1 = interpret(before, xs)[0], interpret(after, xs)[0]
    mag = plane_magnitude(xs[0], wts, pads)
    assert_within(y0, y1, BETA[tile] * U * mag + 4 * U * np.abs(y0))


@pytest.mark.parametrize(
    "why,w_shape,props",
    [
        ("stride", (2, 2, 3, 3), {"strides": (2, 2)}),
        ("5x5", (2, 2, 5, 5), {}),
        ("grouped", (2, 1, 3, 3), {"group": 2}),
        ("dilated", (2, 2, 3, 3), {"dilations": (2, 2)}),
        ("1x1", (2, 2, 1, 1), {}),
    ],
)
def test_inapplicable_convs_are_unchanged(why, w_shape, props):
    w = np.ones(w_shape, np.float32)
    module = conv_model((1, 2, 9, 9), w, (2, 2, 2, 2), **props)
    assert text(apply_pass(module, WinogradConvPass())) == text(module)


def test_non_constant_weight_is_unchanged():
    b = GraphBuilder()
    x, w = b.add_input("x", (1, 2, 6, 6)), b.add_input("w", (2, 2, 3, 3))
    module = b.finish([("y", b.insert(ConvOp(x, w, None, None)))])
    assert text(apply_pass(module, WinogradConvPass())) == text(module)


@pytest.mark.parametrize("tile,ratio", [(2, "2.25x"), (4, "4.00x")])
def test_report_counts_the_multiplications_saved(tile, ratio):
    # 8x8 output: whole tiles for both sizes; 3 -> 4 channels, 1 image.
    module = conv_model((1, 3, 8, 8), np.ones((4, 3, 3, 3), np.float32))
    report = run_pipeline(module, f"winograd-conv{{tile={tile}}}")
    direct = 4 * 3 * 8 * 8 * 9
    wino = 4 * 3 * (8 // tile) ** 2 * (tile + 2) ** 2
    assert direct / wino == {2: 2.25, 4: 4.0}[tile]
    lines = report.messages("winograd-conv")
    assert lines[0] == f"conv -> winograd F({tile}x{tile},3x3): 1"
    assert lines[1].startswith(f"multiplications {direct:,} -> {wino:,} ({ratio} fewer)")
    # F(2x2)'s matrices hold only 0 and ±1: no multiplication in the transforms.
    assert ("+ 0 in transforms" in lines[1]) == (tile == 2)
    # the transformed weights: T*T/9 times the 3x3 ones (16/9 and 36/9)
    assert lines[1].endswith(f"weights {4 * 3 * 9 * 4:,} -> {4 * 3 * (tile + 2) ** 2 * 4:,} bytes")


def test_weights_are_transformed_at_compile_time():
    module = conv_model((1, 3, 6, 6), np.ones((4, 3, 3, 3), np.float32))
    after = apply_pass(module, WinogradConvPass(tile=4))
    (op,) = [o for o in after.walk() if isinstance(o, WinogradConvOp)]
    u = op.u.owner.prop("value").array
    assert u.shape == (36, 4, 3)
    # G 1 G^T for the all-ones kernel: outer product of G's row sums.
    from nnc.ir.ops_conv_algos import winograd_matrices

    g = winograd_matrices(4)[1].sum(axis=1)
    np.testing.assert_allclose(u[:, 0, 0], np.outer(g, g).reshape(-1), rtol=1e-6)
    assert count(after, ConvOp) == 0


def test_bad_tile_is_an_option_error():
    with pytest.raises(InvalidOptionError, match="tile must be 2 or 4"):
        WinogradConvPass(tile=3)
