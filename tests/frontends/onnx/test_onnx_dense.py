"""ONNX Gemm and MatMul import: interpreter == onnxruntime."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

OPSETS = st.sampled_from([9, 11, 13, 17, 21])


@given(
    st.integers(1, 5),
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(0, 1),
    st.integers(0, 1),
    st.sampled_from([None, "n", "1n", "mn", "m1", "scalar"]),
    st.floats(-2, 2, width=32),
    st.floats(-2, 2, width=32),
    OPSETS,
    st.integers(0, 2**16),
)
def test_gemm_matches_onnxruntime(
    check, randn, m, k, n, trans_a, trans_b, c_kind, alpha, beta, opset, seed
):
    from nnc.testing.oracle import single_node_model

    a_shape = (k, m) if trans_a else (m, k)
    b = randn(seed, *((n, k) if trans_b else (k, n)))
    inputs = [("a", a_shape), ("b", b)]
    c_shapes = {"n": (n,), "1n": (1, n), "mn": (m, n), "m1": (m, 1), "scalar": ()}
    if c_kind is None and opset < 11:
        c_kind = "n"  # C is required before opset 11
    if c_kind is not None:
        inputs.append(("c", randn(seed + 1, *c_shapes[c_kind])))
    model = single_node_model(
        "Gemm", inputs, opset=opset, transA=trans_a, transB=trans_b, alpha=alpha, beta=beta
    )
    check(model, {"a": randn(seed + 2, *a_shape)}, atol=1e-6)


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((1, 3, 4), (2, 4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (3, 4, 2)),
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
]


@given(st.sampled_from(MATMUL_SHAPES), st.booleans(), OPSETS, st.integers(0, 2**16))
def test_matmul_matches_onnxruntime(check, randn, shapes, b_const, opset, seed):
    from nnc.testing.oracle import single_node_model

    a_shape, b_shape = shapes
    b = randn(seed, *b_shape) if b_const else b_shape
    model = single_node_model("MatMul", [("a", a_shape), ("b", b)], opset=opset)
    feeds = {"a": randn(seed + 1, *a_shape)}
    if not b_const:
        feeds["b"] = randn(seed + 2, *b_shape)
    check(model, feeds)


def test_matmul_dynamic_batch(check, randn):
    from nnc.testing.oracle import single_node_model

    model = single_node_model("MatMul", [("a", ("B", 3, 4)), ("b", randn(0, 4, 2))])
    module = check(model, {"a": randn(1, 5, 3, 4)})
    assert "tensor<?x3x2xf32>" in str(module)
