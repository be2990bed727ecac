"""Keep weight-shared gemms as codebook indices: the library stores 4- or 8-bit indices.

Before (a gemm, matmul with a constant B, or 1x1 conv whose constant weight has at most
16 distinct values, e.g. after ``cluster{bits=4}``)::

    %B = "nn.constant"() <{value = #nn.weight<"f32", [N, K], ...>}> {nn.codebook = ...}
    %y = "nn.gemm"(%x, %B, %c) <{trans_b = 1, activation = "relu"}>

After::

    %i = "nn.constant"() <{value = #nn.weight<"u8", [ceil(N/16), K, 8], ...>}>
    %cb = "nn.constant"() <{value = #nn.weight<"f32", [16], ...>}>
    %y = "nn.codebook_gemm"(%x, %i, %cb, %c) <{n = N, bits = 4, activation = "relu"}>

``bits`` is 4 when the weight has at most 16 distinct values (two indices per byte:
N*K/2 bytes instead of 4*N*K, 8x smaller), else 8 when at most 256 (4x smaller); a
weight with more distinct values stays dense (reported). Note that ``cluster`` keeps
pruned zeros exact, so a pruned and 4-bit clustered weight has 17 values: 8-bit.
See ``nnc.ir.ops_codebook`` (layout, semantics) and ``kernels/codebook_gemm.py`` (the
native kernel decodes the indices per register tile at run time, never the whole
weight).

Preconditions: at least ``min-params`` weights and one of

* gemm with ``trans_a=0``, ``alpha=1``, constant f32 B; bias ``c`` absent or (N,)/(1, N)
  constant with ``beta=1`` (``layout = "gemm"``);
* ``nn.matmul`` of an activation (rank >= 2) by a constant f32 2-D B: W = B^T, no bias
  (``layout = "gemm"`` over the flattened leading dimensions);
* 1x1 conv with stride 1, no padding, group 1 and no ``residual``; bias absent or a
  constant (``layout = "conv1x1"``: per image, the (N, K) weight times the (K, H*W)
  pixels).

Numeric contract: exact in real arithmetic (the same weight values); float32 summation
order differs from the dense kernel: ``|after - before| <= 2 K u (|W| |X| + |c|)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from nnc.errors import InvalidOptionError
from nnc.ir import ops_compute as oc
from nnc.ir.ops_codebook import CodebookGemmOp, pack_indices
from nnc.ir.types import shape_of
from nnc.passes._common import Tally, constant_array
from nnc.passes._weights import WeightLayer, as_rows, is_sparse_candidate, weight_layers


@dataclass(frozen=True)
class CodebookKernelsPass(ModulePass):
    """Replace few-valued gemm weights by ``nn.codebook_gemm`` (see module docstring)."""

    name = "codebook-kernels"

    min_params: int = 1024
    """Gemms with fewer weights stay dense (the codebook and kernel cost more)."""

    max_bits: int = 8
    """Widest index: 4 (only weights with <= 16 values) or 8."""

    gemm_only: bool = False
    """Only ``nn.gemm`` (where the kernel also wins on speed, not only size): matmuls
    and 1x1 convs stay dense."""

    def __post_init__(self) -> None:
        if self.max_bits not in (4, 8):
            raise InvalidOptionError(
                f"codebook-kernels: max-bits must be 4 or 8, got {self.max_bits}"
            )
        if self.min_params < 0:
            raise InvalidOptionError(
                f"codebook-kernels: min-params must be >= 0, got {self.min_params}"
            )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        kinds = (oc.GemmOp,) if self.gemm_only else (oc.GemmOp, oc.MatMulOp, oc.ConvOp)
        for layer in weight_layers(op, kinds):
            problem = self._problem(layer)
            if problem is not None:
                tally.decline(layer.op, problem)
                continue
            bits = self._rewrite(layer)
            tally.did(f"{layer.op.name} -> nn.codebook_gemm ({bits}-bit)")
        tally.record()

    def _problem(self, layer: WeightLayer) -> str | None:
        op, w = layer.op, layer.array
        if w.size < self.min_params:
            return f"fewer than {self.min_params} weights"
        problem = (
            _conv_problem(op)
            if isinstance(op, oc.ConvOp)
            else _matmul_problem(op)
            if isinstance(op, oc.MatMulOp)
            else _gemm_problem(op, w)
        )
        if problem is not None:
            return problem
        if len(np.unique(w)) > (1 << self.max_bits):
            return f"more than {1 << self.max_bits} distinct weight values"
        return None

    def _rewrite(self, layer: WeightLayer) -> int:
        op = layer.op
        rows = as_rows(layer)  # (N, K)
        values, idx = np.unique(rows, return_inverse=True)
        bits = 4 if len(values) <= 16 else 8
        book = np.zeros(1 << bits, np.float32)
        book[: len(values)] = values
        ind = oc.ConstantOp(value=pack_indices(idx.reshape(rows.shape).astype(np.uint8), bits))
        cb = oc.ConstantOp(value=book)
        new_ops: list = [ind, cb]
        is_conv = isinstance(op, oc.ConvOp)
        bias = op.operand_named("bias" if is_conv else "c") if not _is_matmul(op) else None
        if bias is not None and len(shape_of(bias)) == 2:
            bias_op = oc.ConstantOp(value=np.ascontiguousarray(constant_array(bias).reshape(-1)))
            new_ops.append(bias_op)
            bias = bias_op.results[0]
        epilogue = {"activation": "none", "act_alpha": 0.0, "act_beta": 0.0}
        if not _is_matmul(op):
            epilogue = {key: op.prop(key) for key in epilogue}
        new = CodebookGemmOp(
            op.operand_named("x" if is_conv else "a"),
            ind,
            cb,
            bias,
            n=rows.shape[0],
            bits=bits,
            layout="conv1x1" if is_conv else "gemm",
            **epilogue,
        )
        for key, attr in op.attributes.items():
            new.attributes[key] = attr
        Rewriter.insert_op(new_ops, InsertPoint.before(op))
        Rewriter.replace_op(op, new)
        if not layer.const.results[0].uses:
            Rewriter.erase_op(layer.const)
        return bits


def _is_matmul(op) -> bool:
    return isinstance(op, oc.MatMulOp)


def _gemm_problem(op, w: np.ndarray) -> str | None:
    if op.prop("trans_a") or op.prop("alpha") != 1.0:
        return "gemm with trans_a or alpha != 1"
    c = op.operand_named("c")
    n = w.shape[0] if op.prop("trans_b") else w.shape[1]
    if c is not None:
        cs = tuple(shape_of(c))
        if op.prop("beta") != 1.0 or cs not in ((n,), (1, n)) or constant_array(c) is None:
            return "gemm bias is not a constant (N,) vector with beta=1"
    return None


def _matmul_problem(op) -> str | None:
    if len(shape_of(op.operand_named("a"))) < 2:
        return "matmul activation of rank < 2"
    if len(shape_of(op.results[0])) != len(shape_of(op.operand_named("a"))):
        return "matmul broadcasts the activation"
    return None


def _conv_problem(op) -> str | None:
    if not is_sparse_candidate(op):
        return "conv is not 1x1 with stride 1, no padding and group 1"
    if op.operand_named("residual") is not None:
        return "1x1 conv with a residual operand"
    bias = op.operand_named("bias")
    if bias is not None and constant_array(bias) is None:
        return "1x1 conv bias is not a constant"
    return None
