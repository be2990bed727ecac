"""Property tests of ``low-rank``: Eckart-Young bounds for SVD, the HOSVD bound for
Tucker-2, fewer MACs, inapplicable layers unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import apply_pass, count, rand, seeds, text

from nnc.errors import InvalidOptionError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import conv2d, interpret
from nnc.ir.ops_compute import ConvOp, GemmOp
from nnc.passes._weights import weight_layers
from nnc.passes.low_rank import LowRankPass
from nnc.report import layer_infos


def _gemm(rng, n, k, trans_b, batch=3):
    b = GraphBuilder()
    x = b.add_input("x", (batch, k))
    w = rand(rng, (n, k) if trans_b else (k, n))
    y = b.insert(GemmOp(x, b.constant(w), b.constant(rand(rng, (n,))), trans_b=trans_b))
    return b.finish([("y", y)]), (w if trans_b else w.T)


def _macs(module) -> int:
    return sum(r.macs for r in layer_infos(module))


@given(
    seed=seeds,
    n=st.integers(4, 24),
    k=st.integers(4, 24),
    ratio=st.floats(0.05, 0.9),
    trans_b=st.integers(0, 1),
    scope=st.sampled_from(["local", "global"]),
)
def test_svd_gemm_error_is_bounded_by_the_next_singular_value(seed, n, k, ratio, trans_b, scope):
    rng = np.random.default_rng(seed)
    before, w = _gemm(rng, n, k, trans_b)
    after = apply_pass(before, LowRankPass(ratio=ratio, scope=scope))
    s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    if count(after, GemmOp) == 1:  # skipped: the factorization would not save MACs
        assert text(after) == text(before)
        return
    assert count(after, GemmOp) == 2 and _macs(after) < _macs(before)
    r = weight_layers(after)[0].array.shape[0]
    assert r * (n + k) < n * k
    xin = rand(rng, (3, k))
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    sigma = s[r] if r < len(s) else 0.0
    row_err = np.linalg.norm(y1.astype(np.float64) - y0, axis=1)
    bound = sigma * np.linalg.norm(xin.astype(np.float64), axis=1) + 1e-4 * (1 + np.abs(y0).max())
    assert (row_err <= bound).all()


@given(seed=seeds, m=st.integers(2, 8), c=st.integers(2, 8), ratio=st.floats(0.1, 0.6))
def test_tucker2_weight_error_obeys_the_hosvd_bound(seed, m, c, ratio):
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.add_input("x", (1, c, 5, 5))
    w = rand(rng, (m, c, 3, 3))
    y = b.insert(ConvOp(x, b.constant(w), None, None, pads=(1, 1, 1, 1), strides=(2, 2)))
    before = b.finish([("y", y)])
    after = apply_pass(before, LowRankPass(ratio=ratio, method="tucker"))
    if count(after, ConvOp) == 1:
        assert text(after) == text(before)
        return
    first, core, last = (layer.array.astype(np.float64) for layer in weight_layers(after))
    r_in, r_out = first.shape[0], last.shape[1]
    w_approx = np.einsum("mr,rshw,sc->mchw", last[:, :, 0, 0], core, first[:, :, 0, 0])
    s_out = np.linalg.svd(w.reshape(m, -1).astype(np.float64), compute_uv=False)
    s_in = np.linalg.svd(
        w.transpose(1, 0, 2, 3).reshape(c, -1).astype(np.float64), compute_uv=False
    )
    bound = (s_out[r_out:] ** 2).sum() + (s_in[r_in:] ** 2).sum()
    assert ((w_approx - w) ** 2).sum() <= bound * (1 + 1e-6) + 1e-9
    assert _macs(after) < _macs(before)
    xin = rand(rng, (1, c, 5, 5))
    expect = conv2d(xin, w_approx, (2, 2), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(interpret(after, [xin])[0], expect, rtol=1e-4, atol=1e-4)


def test_full_rank_small_gemm_is_unchanged():
    before, _ = _gemm(np.random.default_rng(0), 2, 2, 1)
    assert text(apply_pass(before, LowRankPass(ratio=0.5))) == text(before)


def test_energy_keeps_an_exactly_low_rank_weight_exact():
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal((16, 2)), rng.standard_normal((2, 16))
    b = GraphBuilder()
    x = b.add_input("x", (1, 16))
    y = b.insert(GemmOp(x, b.constant((u @ v).astype(np.float32)), None, trans_b=1))
    before = b.finish([("y", y)])
    after = apply_pass(before, LowRankPass(energy=0.999999))
    assert weight_layers(after)[0].array.shape[0] == 2
    xin = rand(rng, (1, 16))
    np.testing.assert_allclose(interpret(after, [xin])[0], interpret(before, [xin])[0], atol=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "cp", "energy": 0.9},
        {"method": "qr"},
        {"ratio": 0.0},
        {"energy": 2.0},
        {"scope": "x"},
        {"rank": -1},
    ],
)
def test_bad_options_raise(kwargs):
    with pytest.raises(InvalidOptionError, match="low-rank: "):
        LowRankPass(**kwargs)


def test_declined_factorization_leaves_no_dangling_uses():
    """A Tucker split that would not save MACs is dropped without leaving uses behind
    (later passes walk the users of the conv's input)."""
    from nnc.ir.ops_elementwise import ReluOp
    from nnc.passes.pipelines import run_pipeline

    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.add_input("x", (1, 2, 4, 4))
    y = b.insert(ReluOp(b.insert(ConvOp(x, b.constant(rand(rng, (2, 2, 3, 3))), None, None))))
    module = b.finish([("y", y)])
    report = run_pipeline(module, "low-rank{energy=0.99},fuse-activation")
    assert count(module, ConvOp) == 1
    assert "fused relu" in str(report)
    assert len(list(x.uses)) == 1
