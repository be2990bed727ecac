"""Keep weight-shared gemms as codebook indices: the library stores 4- or 8-bit indices.

Before (a gemm whose constant weight has at most 16 distinct values, e.g. after
``cluster{bits=4}``)::

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

Preconditions: gemm with ``trans_a=0``, ``alpha=1``, constant f32 B; bias ``c`` absent or
(N,)/(1, N) constant with ``beta=1``; at least ``min-params`` weights.

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
from nnc.passes._weights import WeightLayer, as_rows, weight_layers


@dataclass(frozen=True)
class CodebookKernelsPass(ModulePass):
    """Replace few-valued gemm weights by ``nn.codebook_gemm`` (see module docstring)."""

    name = "codebook-kernels"

    min_params: int = 1024
    """Gemms with fewer weights stay dense (the codebook and kernel cost more)."""

    max_bits: int = 8
    """Widest index: 4 (only weights with <= 16 values) or 8."""

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
        for layer in weight_layers(op, (oc.GemmOp,)):
            problem = self._problem(layer)
            if problem is not None:
                tally.decline(layer.op, problem)
                continue
            bits = self._rewrite(layer)
            tally.did(f"nn.gemm -> nn.codebook_gemm ({bits}-bit)")
        tally.record()

    def _problem(self, layer: WeightLayer) -> str | None:
        op = layer.op
        if op.prop("trans_a") or op.prop("alpha") != 1.0:
            return "gemm with trans_a or alpha != 1"
        w = layer.array
        if w.size < self.min_params:
            return f"fewer than {self.min_params} weights"
        c = op.operand_named("c")
        n = w.shape[0] if op.prop("trans_b") else w.shape[1]
        if c is not None:
            cs = tuple(shape_of(c))
            if op.prop("beta") != 1.0 or cs not in ((n,), (1, n)) or constant_array(c) is None:
                return "gemm bias is not a constant (N,) vector with beta=1"
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
        bias = op.operand_named("c")
        if bias is not None and len(shape_of(bias)) == 2:
            bias_op = oc.ConstantOp(value=np.ascontiguousarray(constant_array(bias).reshape(-1)))
            new_ops.append(bias_op)
            bias = bias_op.results[0]
        new = CodebookGemmOp(
            op.operand_named("a"),
            ind,
            cb,
            bias,
            n=rows.shape[0],
            bits=bits,
            activation=op.prop("activation"),
            act_alpha=op.prop("act_alpha"),
            act_beta=op.prop("act_beta"),
        )
        for key, attr in op.attributes.items():
            new.attributes[key] = attr
        Rewriter.insert_op(new_ops, InsertPoint.before(op))
        Rewriter.replace_op(op, new)
        if not layer.const.results[0].uses:
            Rewriter.erase_op(layer.const)
        return bits
