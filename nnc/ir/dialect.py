"""The ``nn`` dialect: every op and attribute, and an xDSL context that knows them."""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.dialects.func import Func
from xdsl.ir import Dialect

from nnc.ir.ops_blocked import BLOCKED_OPS
from nnc.ir.ops_codebook import CODEBOOK_OPS
from nnc.ir.ops_compute import (
    AvgPoolOp,
    BatchNormOp,
    ConstantOp,
    ConvOp,
    GemmOp,
    GlobalAvgPoolOp,
    GlobalMaxPoolOp,
    LayerNormOp,
    LRNOp,
    MatMulOp,
    MaxPoolOp,
)
from nnc.ir.ops_conv_algos import FFTConvOp, WinogradConvOp
from nnc.ir.ops_elementwise import BINARY_OPS, UNARY_OPS
from nnc.ir.ops_quant import QUANT_OPS
from nnc.ir.ops_shape import (
    ConcatOp,
    LogSoftmaxOp,
    PadOp,
    ReduceMaxOp,
    ReduceMeanOp,
    ReduceSumOp,
    ReshapeOp,
    SliceOp,
    SoftmaxOp,
    TransposeOp,
)
from nnc.ir.ops_sparse import SPARSE_OPS
from nnc.ir.weights import WeightAttr

NN_OPS = [
    ConstantOp,
    ConvOp,
    WinogradConvOp,
    FFTConvOp,
    GemmOp,
    MatMulOp,
    BatchNormOp,
    MaxPoolOp,
    AvgPoolOp,
    GlobalAvgPoolOp,
    GlobalMaxPoolOp,
    LRNOp,
    LayerNormOp,
    *UNARY_OPS,
    *BINARY_OPS,
    ReshapeOp,
    TransposeOp,
    ConcatOp,
    SliceOp,
    PadOp,
    SoftmaxOp,
    LogSoftmaxOp,
    ReduceMeanOp,
    ReduceSumOp,
    ReduceMaxOp,
    *QUANT_OPS,
    *SPARSE_OPS,
    *CODEBOOK_OPS,
    *BLOCKED_OPS,
]

NN = Dialect("nn", NN_OPS, [WeightAttr])


def make_context() -> Context:
    """An xDSL context with builtin, func and nn registered."""
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Func)
    ctx.load_dialect(NN)
    return ctx
