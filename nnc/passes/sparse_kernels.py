"""Use the CSR sparse kernel for pruned gemms and 1x1 convs where it beats dense.

Before (a gemm whose constant weight is 90% zeros)::

    %y = "nn.gemm"(%x, %B, %c) <{trans_b = 1, activation = "relu"}>   // B: (N, K)

After::

    %v = "nn.constant"() <{value = #nn.weight<"f32", [nnz], ...>}>
    %y = "nn.sparse_gemm"(%x, %v, %c) <{row_ptr = #nn.weight<"i32", [N+1], ...>,
         col_idx = #nn.weight<"i32", [nnz], ...>, k = K, layout = "gemm", activation = "relu"}>

and a 1x1 conv (stride 1, no padding, group 1) becomes ``layout = "conv1x1"`` (bias and
residual kept). See ``nnc.ir.ops_sparse`` and ``kernels/sparse_gemm.py``.

Cost rule (when it applies): the sparse kernel does work proportional to the non-zeros
but loses the dense kernels' register blocking and SIMD, so it pays only at high
sparsity. Measured with the JIT (``tools/sparse_breakeven.py``: 1024x1024 batch-1 gemm,
256->256 1x1 conv over 14x14 pixels, 1 thread, AVX-512 host, sparse/dense latency)::

    sparsity   0.5   0.7   0.8   0.9   0.95
    gemm       3.02  2.17  1.52  0.92  0.58    (gather dot product, 4 accumulators)
    conv1x1    1.16  0.79  0.55  0.32  0.21    (one vectorized axpy per non-zero)

So the defaults are ``min-sparsity-gemm=0.9`` and ``min-sparsity-conv=0.7``; layers
below the threshold stay dense (reported). A gemm with more than ``max-rows`` input
rows (batch) stays dense too: the sparse dot product re-reads the structure per row.

Preconditions: gemm with ``trans_a=0``, ``alpha=1``, a constant B, and bias ``c`` absent
or (N,)/(1, N) with ``beta=1``; conv 1x1/stride 1/no pad/group 1 with a constant weight;
f32; static shapes.

Numeric contract: exact in real arithmetic (the zero products are skipped); float32
summation order differs from the dense kernel, so
``|after - before| <= 2 K u (|W| |X| + |c|)`` with u = 2**-24, K the reduction length.
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
from nnc.ir.ops_sparse import SparseGemmOp, dense_to_csr
from nnc.ir.types import shape_of
from nnc.ir.weights import WeightAttr
from nnc.passes._common import Tally, constant_array
from nnc.passes._weights import WeightLayer, as_rows, is_sparse_candidate, weight_layers


@dataclass(frozen=True)
class SparseKernelsPass(ModulePass):
    """Replace sparse-enough gemms/1x1 convs by ``nn.sparse_gemm`` (see module docstring)."""

    name = "sparse-kernels"

    min_sparsity_gemm: float = 0.9
    """Fraction of zero weights from which a gemm uses the CSR kernel."""

    min_sparsity_conv: float = 0.7
    """Fraction of zero weights from which a 1x1 conv uses the CSR kernel."""

    max_rows: int = 8
    """Gemms with more input rows (batch) than this stay dense."""

    def __post_init__(self) -> None:
        for key in ("min_sparsity_gemm", "min_sparsity_conv"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise InvalidOptionError(
                    f"sparse-kernels: {key.replace('_', '-')} must be in [0, 1], "
                    f"got {getattr(self, key)}"
                )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        for layer in weight_layers(op, (oc.ConvOp, oc.GemmOp)):
            problem = self._problem(layer)
            if problem is not None:
                tally.decline(layer.op, problem)
                continue
            self._rewrite(layer)
            tally.did(f"{layer.op.name} -> nn.sparse_gemm")
        tally.record()

    def _problem(self, layer: WeightLayer) -> str | None:
        op = layer.op
        if not is_sparse_candidate(op):
            return "not a gemm (trans_a=0, alpha=1) or 1x1 stride-1 unpadded conv"
        w = layer.array
        sparsity = 1.0 - np.count_nonzero(w) / w.size
        if isinstance(op, oc.GemmOp):
            c = op.operand_named("c")
            n = w.shape[0] if op.prop("trans_b") else w.shape[1]
            if c is not None:
                cs = tuple(shape_of(c))
                bad_shape = cs not in ((n,), (1, n)) or (len(cs) == 2 and constant_array(c) is None)
                if op.prop("beta") != 1.0 or bad_shape:
                    return "gemm bias is not a (N,) vector with beta=1"
            if shape_of(op.a)[0] > self.max_rows:
                return f"gemm has more than {self.max_rows} rows"
            threshold = self.min_sparsity_gemm
        else:
            threshold = self.min_sparsity_conv
        if sparsity < threshold:
            return f"sparsity below the cost rule's break-even ({threshold:.2f})"
        return None

    def _rewrite(self, layer: WeightLayer) -> None:
        op = layer.op
        rows = as_rows(layer)  # (N, K)
        row_ptr, col_idx, values = dense_to_csr(rows)
        v = oc.ConstantOp(value=values)
        is_gemm = isinstance(op, oc.GemmOp)
        bias = op.operand_named("c") if is_gemm else op.operand_named("bias")
        if is_gemm and bias is not None and len(shape_of(bias)) == 2:
            bias_op = oc.ConstantOp(value=np.ascontiguousarray(constant_array(bias).reshape(-1)))
            Rewriter.insert_op(bias_op, InsertPoint.before(op))
            bias = bias_op.results[0]
        new = SparseGemmOp(
            op.operand_named("a") if is_gemm else op.operand_named("x"),
            v,
            bias,
            None if is_gemm else op.operand_named("residual"),
            row_ptr=WeightAttr.from_array(row_ptr),
            col_idx=WeightAttr.from_array(col_idx),
            k=rows.shape[1],
            layout="gemm" if is_gemm else "conv1x1",
            activation=op.prop("activation"),
            act_alpha=op.prop("act_alpha"),
            act_beta=op.prop("act_beta"),
        )
        for key, attr in op.attributes.items():
            new.attributes[key] = attr
        Rewriter.insert_op(v, InsertPoint.before(op))
        Rewriter.replace_op(op, new)
        if not layer.const.results[0].uses:
            Rewriter.erase_op(layer.const)
