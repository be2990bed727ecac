"""Seeded transformer-encoder-block builder (post-LN BERT-style block)."""

from __future__ import annotations

import math

import numpy as np
import onnx

from nnc.testing._builder import GraphBuilder, make_checked_model
from nnc.testing.zoo_cnn import check_opset


def _layer_norm(b: GraphBuilder, x: str, name: str, d_model: int) -> str:
    gamma = b.rng.uniform(0.8, 1.2, size=d_model).astype(np.float32)
    beta = b.small((d_model,), 0.05)
    return b.node(
        "LayerNormalization",
        [x, b.const(f"{name}.weight", gamma), b.const(f"{name}.bias", beta)],
        name,
        axis=-1,
        epsilon=1e-5,
    )


def _gelu(b: GraphBuilder, x: str, name: str, kind: str) -> str:
    if kind == "op":
        return b.node("Gelu", [x], name, approximate="none")
    # 0.5 * x * (1 + erf(x / sqrt(2))), node order as torch.onnx exports it.
    y = b.node("Div", [x, b.const(f"{name}.sqrt2", np.float32(math.sqrt(2.0)))], f"{name}.div")
    y = b.node("Erf", [y], f"{name}.erf")
    y = b.node("Add", [y, b.const(f"{name}.one", np.float32(1.0))], f"{name}.add")
    y = b.node("Mul", [x, y], f"{name}.mul")
    return b.node("Mul", [y, b.const(f"{name}.half", np.float32(0.5))], f"{name}.mul_half")


def transformer_block(
    seq: int = 128,
    d_model: int = 256,
    heads: int = 4,
    d_ff: int = 1024,
    batch: int = 1,
    *,
    gelu: str = "erf",
    opset: int | None = None,
    seed: int = 0,
) -> onnx.ModelProto:
    """One post-LN transformer encoder block: ``input (batch, seq, d_model) -> output``.

    Graph (all shapes static, ``dh = d_model // heads``)::

        Q/K/V   = MatMul(x, W) + b                        (batch, seq, d_model)
        Q, V    -> Reshape (batch, seq, heads, dh) -> Transpose(0,2,1,3)
        K       -> Reshape (batch, seq, heads, dh) -> Transpose(0,2,3,1)  (= K^T)
        attn    = Softmax(MatMul(Q, K^T) / sqrt(dh), axis=-1)
        ctx     = MatMul(attn, V) -> Transpose(0,2,1,3) -> Reshape (batch, seq, d_model)
        h       = LayerNormalization(x + MatMul(ctx, Wo) + bo)
        ffn     = MatMul(Gelu(MatMul(h, W1) + b1), W2) + b2
        output  = LayerNormalization(h + ffn)

    ``gelu="erf"`` decomposes GELU as ``0.5*x*(1+Erf(x/sqrt(2)))`` (Div, Erf, Add, Mul,
    Mul); ``gelu="op"`` uses the opset-20 ``Gelu`` op. ``opset`` defaults to 17 (20 for
    ``gelu="op"``); LayerNormalization needs >= 17.
    """
    if gelu not in ("erf", "op"):
        raise ValueError(f"gelu must be 'erf' or 'op', got {gelu!r}")
    if opset is None:
        opset = 20 if gelu == "op" else 17
    check_opset("transformer_block", opset, 17, "LayerNormalization")
    if gelu == "op":
        check_opset("transformer_block(gelu='op')", opset, 20, "the Gelu op")
    if d_model % heads:
        raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
    dh = d_model // heads
    b = GraphBuilder(seed)
    x = "input"
    q = b.linear_matmul(x, "attn.q_proj", d_model, d_model)
    k = b.linear_matmul(x, "attn.k_proj", d_model, d_model)
    v = b.linear_matmul(x, "attn.v_proj", d_model, d_model)
    split_shape = b.const("attn.split_shape", np.array([batch, seq, heads, dh], dtype=np.int64))
    merge_shape = b.const("attn.merge_shape", np.array([batch, seq, d_model], dtype=np.int64))
    q = b.node("Reshape", [q, split_shape], "attn.q_reshape")
    q = b.node("Transpose", [q], "attn.q_transpose", perm=[0, 2, 1, 3])
    k = b.node("Reshape", [k, split_shape], "attn.k_reshape")
    k = b.node("Transpose", [k], "attn.k_transpose", perm=[0, 2, 3, 1])
    v = b.node("Reshape", [v, split_shape], "attn.v_reshape")
    v = b.node("Transpose", [v], "attn.v_transpose", perm=[0, 2, 1, 3])
    scores = b.node("MatMul", [q, k], "attn.qk")
    scale = b.const("attn.scale", np.float32(math.sqrt(dh)))
    scores = b.node("Div", [scores, scale], "attn.scale_div")
    probs = b.node("Softmax", [scores], "attn.softmax", axis=-1)
    ctx = b.node("MatMul", [probs, v], "attn.pv")
    ctx = b.node("Transpose", [ctx], "attn.ctx_transpose", perm=[0, 2, 1, 3])
    ctx = b.node("Reshape", [ctx, merge_shape], "attn.ctx_reshape")
    attn = b.linear_matmul(ctx, "attn.out_proj", d_model, d_model)
    h = b.node("Add", [x, attn], "residual1")
    h = _layer_norm(b, h, "norm1", d_model)
    f = b.linear_matmul(h, "ffn.fc1", d_model, d_ff, gain=2.0)
    f = _gelu(b, f, "ffn.gelu", gelu)
    f = b.linear_matmul(f, "ffn.fc2", d_ff, d_model)
    y = b.node("Add", [h, f], "residual2")
    y = _layer_norm(b, y, "norm2", d_model)
    b.rename(y, "output")
    shape = (batch, seq, d_model)
    graph = b.graph("transformer_block", [("input", shape)], [("output", shape)])
    return make_checked_model(graph, opset)
