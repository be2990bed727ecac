"""Fuse bias adds, residual adds and activations into conv/gemm epilogues.

Before::

    %y = "nn.conv"(%x, %w)                 %y = "nn.conv"(%x, %w, %b)
    %z = "nn.add"(%y, %bias_c)             %z = "nn.add"(%y, %skip)     // %skip: output-shaped
    %r = "nn.relu"(%z)

After::

    %r = "nn.conv"(%x, %w, %b2) <{activation = "relu"}>     %z = "nn.conv"(%x, %w, %b, %skip)

Preconditions: the conv/gemm result has that add/activation as its only user, and the
conv/gemm has no activation yet (its epilogue is ``act(acc + bias + residual)``, so
nothing can be appended after the activation); f32 only. Three rewrites:

* bias add: ``add(conv, k)`` with a constant k holding one value per output channel
  (shape (M,1,1), (1,M,1,1), (1,), ()) becomes the conv bias (summed with an
  existing constant bias). For gemm, ``add(gemm, t)`` where t broadcasts to (M, N) under
  the gemm ``c`` rule becomes ``c`` (beta = 1); an existing ``c`` must be constant, like t.
* residual add: ``add(conv, t)`` with t of exactly the conv's output type becomes the
  conv's ``residual`` operand (when the conv has none).
* activation: relu, clip, leaky_relu, sigmoid, hard_sigmoid, hard_swish, tanh, gelu,
  gelu_tanh become the ``activation``/``act_alpha``/``act_beta`` properties (also of the
  compressed gemms ``nn.sparse_gemm`` and ``nn.codebook_gemm``; adds are not fused
  into those).

Numeric contract: activation fusion alone is bitwise exact (the accumulator is rounded
to f32 before the activation either way). Fusing an add skips one float32 rounding of
the sum, so elementwise, with u = 2**-24 and L the activation's Lipschitz constant
(1 for relu/clip/tanh/sigmoid, 1.5 for hard_swish, 1.13 for gelu and gelu_tanh,
max(1, |alpha|) for leaky_relu/hard_sigmoid)::

    |after - before| <= 4u * (L * (|W| (*) |X| + |bias| + |residual|) + |before|)

where ``|W| (*) |X|`` is the convolution (gemm: |alpha| times the matrix product) of the
absolute values of weights and input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from nnc.ir.nn_base import ShapeError
from nnc.ir.ops_codebook import CodebookGemmOp
from nnc.ir.ops_compute import ConvOp, GemmOp
from nnc.ir.ops_elementwise import AddOp, UnaryOp
from nnc.ir.ops_sparse import SparseGemmOp
from nnc.ir.types import shape_of
from nnc.passes._common import (
    Tally,
    constant_array,
    erase_if_dead,
    f32_constant,
    is_f32,
    per_channel,
    sole_user,
)

#: Ops with the activation epilogue (compressed gemms: activations only, not adds).
_EPILOGUE_OPS = (ConvOp, GemmOp, SparseGemmOp, CodebookGemmOp)

#: Unary op kinds the conv/gemm epilogue implements.
FUSABLE_ACTIVATIONS = frozenset(
    "relu clip leaky_relu sigmoid hard_sigmoid hard_swish tanh gelu gelu_tanh".split()
)


def _open_producer(value: SSAValue, user: Operation, ops: tuple = (ConvOp, GemmOp)):
    """The ``ops`` op (conv/gemm) defining ``value`` if ``user`` is its only user and it
    has no activation."""
    producer = value.owner
    if not isinstance(producer, ops) or sole_user(value) is not user:
        return None
    return producer if producer.prop("activation") == "none" else None


def _operands(op: ConvOp | GemmOp) -> list[SSAValue | None]:
    """All operands by position, None for an absent optional one (constructor order)."""
    return [op.operand_named(n) for n in (*op.OPERANDS, *op.OPTIONAL)]


def _rebuild(old: ConvOp | GemmOp, operands: list, **props) -> ConvOp | GemmOp | None:
    """``old`` with new operands/properties, or None if that does not type-check.

    Discardable attributes (layer names, compression and quantization records) carry over.
    """
    try:
        new = type(old)(*operands, **{**old.props_dict(), **props})
    except ShapeError:
        return None
    new.attributes.update(old.attributes)
    return new


def _fuse_conv_add(conv: ConvOp, other: SSAValue) -> list[Operation] | None:
    """New ops computing conv + other with other as bias or residual (None: not fusable)."""
    out_shape = shape_of(conv.results[0])
    k = constant_array(other)
    channel = None if k is None else per_channel(k, out_shape)
    bias = conv.operand_named("bias")
    residual = conv.operand_named("residual")
    if channel is not None:
        old = np.zeros(len(channel)) if bias is None else constant_array(bias)
        if old is None:
            return None
        new_bias = f32_constant(old.astype(np.float64) + channel)
        new = _rebuild(conv, [conv.x, conv.w, new_bias, residual])
        return None if new is None else [new_bias, new]
    if residual is None and other.type == conv.results[0].type:
        new = _rebuild(conv, [conv.x, conv.w, bias, other])
        return None if new is None else [new]
    return None


def _fuse_gemm_add(gemm: GemmOp, other: SSAValue) -> list[Operation] | None:
    """New ops computing gemm + other with other folded into ``c`` (None: not fusable)."""
    c = gemm.operand_named("c")
    if c is None:
        new = _rebuild(gemm, [gemm.a, gemm.b, other], beta=1.0)
        return None if new is None else [new]
    old, k = constant_array(c), constant_array(other)
    if old is None or k is None:
        return None
    new_c = f32_constant(gemm.prop("beta") * old.astype(np.float64) + k)
    new = _rebuild(gemm, [gemm.a, gemm.b, new_c], beta=1.0)
    return None if new is None else [new_c, new]


@dataclass
class FuseAddPattern(RewritePattern):
    """add(conv|gemm, t) -> conv|gemm with t as bias, residual or c."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, add: AddOp, rewriter: PatternRewriter) -> None:
        for mine, other in ((add.lhs, add.rhs), (add.rhs, add.lhs)):
            producer = _open_producer(mine, add)
            if producer is None or not is_f32(mine, other):
                continue
            fuse = _fuse_conv_add if isinstance(producer, ConvOp) else _fuse_gemm_add
            new_ops = fuse(producer, other)
            if new_ops is None or new_ops[-1].results[0].type != add.results[0].type:
                continue
            old_operands = list(producer.operands)
            rewriter.replace(add, new_ops)
            erase_if_dead(rewriter, [mine, other, *old_operands])
            self.tally.did(f"fused add into {producer.name}")
            return


@dataclass
class FuseActivationPattern(RewritePattern):
    """act(conv|gemm) -> conv|gemm with the activation epilogue."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, act: UnaryOp, rewriter: PatternRewriter) -> None:
        if act.KIND not in FUSABLE_ACTIVATIONS:
            return
        producer = act.x.owner
        if not isinstance(producer, _EPILOGUE_OPS):
            return
        if _open_producer(act.x, act, _EPILOGUE_OPS) is None:
            self.tally.decline(act, f"{producer.name} output has other users or an activation")
            return
        alpha, beta = act.act_params()
        new = _rebuild(
            producer, _operands(producer), activation=act.KIND, act_alpha=alpha, act_beta=beta
        )
        if new is None:
            return
        rewriter.replace(act, new)
        erase_if_dead(rewriter, [act.x])
        self.tally.did(f"fused {act.KIND} into {producer.name}")


@dataclass(frozen=True)
class FuseActivationPass(ModulePass):
    """Fuse bias/residual adds and activations into conv/gemm (see module docstring)."""

    name = "fuse-activation"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        patterns = GreedyRewritePatternApplier(
            [FuseAddPattern(tally), FuseActivationPattern(tally)], dce_enabled=False
        )
        PatternRewriteWalker(patterns).rewrite_module(op)
        tally.record()
