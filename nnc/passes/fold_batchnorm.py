"""Fold inference batch normalization into the convolution or gemm that feeds it.

Before::

    %y = "nn.conv"(%x, %w, %b)                      // activation "none", no residual
    %z = "nn.batch_norm"(%y, %scale, %shift, %mean, %var) <{epsilon = eps}>

After::

    %z = "nn.conv"(%x, %w2, %b2)

Math, per output channel m, with s = scale / sqrt(var + eps)::

    w2[m] = w[m] * s[m]          b2[m] = (b[m] - mean[m]) * s[m] + shift[m]   (b = 0 if absent)

Gemm (a rank-2 batch norm over the gemm output; its channel axis 1 is the output column n)::

    %y = "nn.gemm"(%a, %B, %c) <{alpha, beta}>;  %z = "nn.batch_norm"(%y, ...)
    ->  %z = "nn.gemm"(%a, %B2, %c2) <{alpha, beta = 1}>
    B2[:, n] = B[:, n] * s[n]   (B2[n, :] when trans_b)
    c2 = (beta * c - mean) * s + shift        (c = 0 if absent; shape (N,) or (M, N))

Preconditions (otherwise the pair is left unchanged and the report says why): the
conv/gemm result has the batch norm as its only user; the weight, the bias (if any)
and all four batch-norm parameters are ``nn.constant``; the conv/gemm has no fused
activation or residual yet; all tensors are f32. A batch norm fed by anything else is
left unchanged.

Numeric contract: exact in real arithmetic. The folded parameters are computed in
float64 and rounded once to float32, so elementwise, with u = 2**-24::

    |after - before| <= 8u * (|s| * (|W| (*) |X|) + |s * (b - mean)| + |shift| + |before|)

where ``|W| (*) |X|`` is the convolution (or matrix product, times |alpha|) of the
absolute values of weights and input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from nnc.ir.ops_compute import BatchNormOp, ConvOp, GemmOp
from nnc.passes._common import Tally, constant_array, erase_if_dead, f32_constant, is_f32, sole_user


def _bn_scale_shift(bn: BatchNormOp) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(s, mean, shift) in float64, or None if a parameter is not a constant."""
    params = [constant_array(v) for v in (bn.scale, bn.bias, bn.mean, bn.var)]
    if any(p is None for p in params):
        return None
    scale, shift, mean, var = (p.astype(np.float64) for p in params)
    return scale / np.sqrt(var + bn.prop("epsilon")), mean, shift


def _producer_problem(bn: BatchNormOp) -> str | None:
    """Why the op feeding ``bn`` cannot absorb it (None if it can, as far as types go)."""
    producer = bn.x.owner
    if not isinstance(producer, ConvOp | GemmOp):
        return "input is not a conv or gemm"
    if sole_user(bn.x) is not bn:
        return f"{producer.name} output has other users"
    if producer.prop("activation") != "none":
        return f"{producer.name} already has a fused activation"
    if isinstance(producer, ConvOp) and producer.operand_named("residual") is not None:
        return "conv already has a fused residual"
    if not is_f32(bn.x, *producer.operands, *bn.operands):
        return "not f32"
    return None


def _fold_into_conv(conv: ConvOp, s, mean, shift) -> list | None:
    w = constant_array(conv.w)
    bias_value = conv.operand_named("bias")
    b = np.zeros(len(s)) if bias_value is None else constant_array(bias_value)
    if w is None or b is None:
        return None
    w2 = f32_constant(w.astype(np.float64) * s.reshape(-1, 1, 1, 1))
    b2 = f32_constant((b.astype(np.float64) - mean) * s + shift)
    return [w2, b2, ConvOp(conv.x, w2, b2, None, **conv.props_dict())]


def _fold_into_gemm(gemm: GemmOp, s, mean, shift) -> list | None:
    b = constant_array(gemm.b)
    c_value = gemm.operand_named("c")
    c = np.zeros(()) if c_value is None else constant_array(c_value)
    if b is None or c is None:
        return None
    cols = s.reshape(-1, 1) if gemm.prop("trans_b") else s.reshape(1, -1)
    b2 = f32_constant(b.astype(np.float64) * cols)
    c2 = f32_constant((gemm.prop("beta") * c.astype(np.float64) - mean) * s + shift)
    props = {**gemm.props_dict(), "beta": 1.0}
    return [b2, c2, GemmOp(gemm.a, b2, c2, **props)]


@dataclass
class FoldBatchNormPattern(RewritePattern):
    """Replace conv/gemm -> batch_norm by one conv/gemm with rescaled weights and bias."""

    tally: Tally

    @op_type_rewrite_pattern
    def match_and_rewrite(self, bn: BatchNormOp, rewriter: PatternRewriter) -> None:
        problem = _producer_problem(bn)
        stats = _bn_scale_shift(bn)
        if problem is None and stats is None:
            problem = "batch-norm parameters are not constants"
        if problem is not None:
            self.tally.decline(bn, problem)
            return
        producer = bn.x.owner
        fold = _fold_into_conv if isinstance(producer, ConvOp) else _fold_into_gemm
        new_ops = fold(producer, *stats)
        if new_ops is None or new_ops[-1].results[0].type != bn.results[0].type:
            self.tally.decline(bn, f"{producer.name} weight or bias is not a constant")
            return
        old_operands = [*bn.operands, *producer.operands]
        rewriter.replace(bn, new_ops)
        erase_if_dead(rewriter, old_operands)
        self.tally.did(f"folded batch_norm into {producer.name}")


@dataclass(frozen=True)
class FoldBatchNormPass(ModulePass):
    """Fold batch normalization into the preceding conv or gemm (see module docstring)."""

    name = "fold-batchnorm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        walker = PatternRewriteWalker(FoldBatchNormPattern(tally), apply_recursively=False)
        walker.rewrite_module(op)
        tally.record()
