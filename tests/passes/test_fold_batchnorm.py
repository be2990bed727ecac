"""fold-batchnorm: conv/gemm -> batch_norm folds within the declared float32 bound."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from pass_testing import U, apply_pass, assert_within, conv_geometries, count, rand, seeds, text

from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_compute import BatchNormOp, ConvOp, GemmOp
from nnc.ir.ops_elementwise import ReluOp
from nnc.passes.fold_batchnorm import FoldBatchNormPass
from nnc.passes.pipelines import run_pipeline


def bn_params(rng, channels: int):
    scale, shift, mean = (rng.normal(0, 1.5, channels).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.05, 2.0, channels).astype(np.float32)
    return scale, shift, mean, var


def add_bn(b: GraphBuilder, y, params, eps: float):
    return b.insert(BatchNormOp(y, *(b.constant(p) for p in params), epsilon=eps))


@given(
    geom=conv_geometries(), seed=seeds, with_bias=st.booleans(), eps=st.sampled_from([1e-5, 1e-3])
)
def test_conv_batchnorm_folds_within_bound(geom, seed, with_bias, eps):
    rng = np.random.default_rng(seed)
    w, bias = rand(rng, geom.w_shape), rand(rng, geom.m) if with_bias else None
    params = bn_params(rng, geom.m)
    b = GraphBuilder()
    x = b.add_input("x", geom.x_shape)
    bias_value = b.constant(bias) if with_bias else None
    conv = b.insert(ConvOp(x, b.constant(w), bias_value, None, **geom.props()))
    before = b.finish([("y", add_bn(b, conv, params, eps))])

    after = apply_pass(before, FoldBatchNormPass())

    assert (count(before, BatchNormOp), count(after, BatchNormOp)) == (1, 0)
    assert count(after, ConvOp) == 1
    xin = rand(rng, geom.x_shape, -2, 2)
    y0, y1 = interpret(before, [xin])[0], interpret(after, [xin])[0]
    scale, shift, mean, var = (p.astype(np.float64) for p in params)
    s = scale / np.sqrt(var + eps)
    b64 = np.zeros(geom.m) if bias is None else np.abs(bias.astype(np.float64))
    per_ch = (np.abs(s) * (b64 + np.abs(mean)) + np.abs(shift)).reshape(1, -1, 1, 1)
    bound = 8 * U * (np.abs(s).reshape(1, -1, 1, 1) * geom.abs_conv(xin, w) + per_ch + np.abs(y0))
    assert_within(y0, y1, bound)


@given(
    m=st.integers(1, 4),
    k=st.integers(1, 5),
    n=st.integers(1, 5),
    seed=seeds,
    trans_a=st.booleans(),
    trans_b=st.booleans(),
    c_kind=st.sampled_from(["none", "row", "full", "column", "scalar"]),
)
def test_gemm_batchnorm_folds_per_output_column(m, k, n, seed, trans_a, trans_b, c_kind):
    rng = np.random.default_rng(seed)
    a_shape = (k, m) if trans_a else (m, k)
    bmat = rand(rng, (n, k) if trans_b else (k, n))
    c_shape = {"none": None, "row": (n,), "full": (m, n), "column": (m, 1), "scalar": ()}[c_kind]
    c = None if c_shape is None else rand(rng, c_shape)
    alpha, beta = (float(v) for v in rng.uniform(-2, 2, 2))
    params = bn_params(rng, n)
    b = GraphBuilder()
    a = b.add_input("a", a_shape)
    gemm = b.insert(
        GemmOp(
            a,
            b.constant(bmat),
            None if c is None else b.constant(c),
            trans_a=int(trans_a),
            trans_b=int(trans_b),
            alpha=alpha,
            beta=beta,
        )
    )
    before = b.finish([("y", add_bn(b, gemm, params, 1e-5))])

    after = apply_pass(before, FoldBatchNormPass())

    assert (count(before, BatchNormOp), count(after, BatchNormOp)) == (1, 0)
    ain = rand(rng, a_shape, -2, 2)
    y0, y1 = interpret(before, [ain])[0], interpret(after, [ain])[0]
    scale, shift, mean, var = (p.astype(np.float64) for p in params)
    s = np.abs(scale / np.sqrt(var + 1e-5))
    a64 = np.abs(ain.T if trans_a else ain).astype(np.float64)
    b64 = np.abs(bmat.T if trans_b else bmat).astype(np.float64)
    c64 = 0.0 if c is None else np.abs(beta * c.astype(np.float64))
    bound = 8 * U * (s * (abs(alpha) * a64 @ b64 + c64 + np.abs(mean)) + np.abs(shift) + np.abs(y0))
    assert_within(y0, y1, bound)


def conv_bn_model(extra_user: bool = False, constant_params: bool = True, activation: str = "none"):
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.add_input("x", (1, 2, 4, 4))
    conv = b.insert(
        ConvOp(x, b.constant(rand(rng, (3, 2, 3, 3))), None, None, activation=activation)
    )
    if constant_params:
        params = [b.constant(p) for p in bn_params(rng, 3)]
    else:
        params = [b.add_input(f"p{i}", (3,)) for i in range(4)]
    y = b.insert(BatchNormOp(conv, *params))
    outputs = [("y", y)] + ([("z", b.insert(ReluOp(conv)))] if extra_user else [])
    return b.finish(outputs)


def test_inapplicable_inputs_are_left_unchanged():
    b = GraphBuilder()
    x = b.add_input("x", (1, 3, 2, 2))
    standalone = b.finish(
        [("y", b.insert(BatchNormOp(x, *(b.constant(np.ones(3, np.float32)) for _ in range(4)))))]
    )
    for module in (
        conv_bn_model(extra_user=True),
        conv_bn_model(constant_params=False),
        conv_bn_model(activation="relu"),
        standalone,
    ):
        assert text(apply_pass(module, FoldBatchNormPass())) == text(module)


def test_report_says_what_happened_and_why_not():
    folded = run_pipeline(conv_bn_model(), "fold-batchnorm")
    assert folded.messages("fold-batchnorm") == ["folded batch_norm into nn.conv: 1"]
    kept = run_pipeline(conv_bn_model(extra_user=True), "fold-batchnorm")
    assert kept.messages("fold-batchnorm") == ["not applied (1x): nn.conv output has other users"]
