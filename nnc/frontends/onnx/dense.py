"""ONNX Gemm -> ``nn.gemm``; MatMul -> ``nn.matmul``.

MatMul follows numpy.matmul: a 1-D first operand is treated as a row ``(1, K)`` and a
1-D second operand as a column ``(K, 1)``; the inserted dimension is removed from the
result with a reshape. Batch dimensions broadcast.
"""

from __future__ import annotations

from nnc.frontends.onnx.context import NodeContext, Output
from nnc.frontends.onnx.registry import converter
from nnc.ir.nn_base import TensorSpec
from nnc.ir.ops_compute import GemmOp, MatMulOp


@converter("Gemm")
def convert_gemm(node: NodeContext) -> list[Output]:
    """Gemm(A, B, C?) = alpha * op(A) @ op(B) + beta * C."""
    c = node.input(2) if node.has_input(2) else None
    op = GemmOp(
        node.input(0),
        node.input(1),
        c,
        trans_a=int(node.attr("transA", 0)),
        trans_b=int(node.attr("transB", 0)),
        alpha=float(node.attr("alpha", 1.0)),
        beta=float(node.attr("beta", 1.0)),
    )
    return [node.insert(op)]


@converter("MatMul")
def convert_matmul(node: NodeContext) -> list[Output]:
    """MatMul(A, B) with numpy.matmul semantics, including 1-D operands."""
    a, b = node.input(0), node.input(1)
    sa, sb = node.spec(0).shape, node.spec(1).shape
    if not sa or not sb:
        raise node.error("MatMul operands must have rank >= 1")
    if len(sa) == 1:
        a = node.reshape(a, (1, sa[0]))
    if len(sb) == 1:
        b = node.reshape(b, (sb[0], 1))
    y = node.insert(MatMulOp(a, b))
    shape = list(TensorSpec.of(y).shape)
    if len(sb) == 1:
        shape.pop(-1)
    if len(sa) == 1:
        shape.pop(-2 if len(sb) != 1 else -1)
    return [node.reshape(y, shape)]
