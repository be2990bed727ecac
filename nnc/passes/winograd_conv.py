"""Rewrite 3x3 stride-1 convolutions to Winograd F(m x m, 3 x 3), m = 2 or 4.

Before::

    %y = "nn.conv"(%x, %w, %b, %r) <{strides = [1, 1], dilations = [1, 1], group = 1,
                                     pads = P, activation = A}>      // w: (M, C, 3, 3)

After (``tile`` = m, T = m + 2)::

    %u = "nn.constant"() <{value = G w G^T}>                        // (T*T, M, C)
    %y = "nn.winograd_conv"(%x, %u, %b, %r) <{tile = m, pads = P, activation = A}>

Math (Lavin & Gray; matrices in ``nnc/ir/ops_conv_algos.py``): per m x m output tile,
``Y = A^T [sum_c (G g_c G^T) . (B^T d_c B)] A`` with d_c the T x T input patch. The weight
transform ``G g G^T`` is constant-folded here, in float64, and stored rounded once to
float32; the original 3x3 weights leave the module. The channel sum is one GEMM per
position of the T x T tile. Multiplications in that stage, per tile and (output, input)
channel pair: F(2x2,3x3) 16 instead of 36 (2.25x fewer), F(4x4,3x3) 36 instead of 144
(4x fewer); partial tiles at the right/bottom border count as whole tiles. The report
gives the totals before/after, and the extra constant multiplies of the transforms
(none for F(2x2); B and A of F(4x4) hold 1/2, 2, 5/2, ...). The price: the stored
weights grow T*T/9 times (1.78x for F(2x2), 4x for F(4x4)), also in the report.

Preconditions (otherwise the conv is unchanged and the report says why): ``nn.conv``
with a constant f32 weight, kernel 3x3, stride 1, dilation 1, group 1 (grouped and
depthwise convs are excluded: their per-group GEMMs are too small to pay for the
transforms), static shapes. Any padding, bias, residual and activation.

Numeric contract: exact in real arithmetic; in float32 the transforms amplify rounding
errors. With ``mag = max over the output plane (n, m) of |W| (*) |X|`` (the convolution
of absolute values) and u = 2**-24, elementwise::

    |after - before| <= beta * u * mag + 4u * |before|,   beta = 16 for F(2x2), 64 for F(4x4)

for the interpreter (float64 on the float32-rounded U) and for the native kernel (float32
throughout). Measured worst |err| / (u * mag) over random layers up to 70 channels:
interpreter 0.4 / 1.6, kernel 1.4 / 6.7 (F(2x2) / F(4x4)), so the bound has ~10x
headroom. Whole ResNet-18 (32x32) compiled with either tile matches onnxruntime within
1e-4 of the output's max (measured 6e-7 / 7e-7).
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

from nnc.errors import InvalidOptionError
from nnc.ir.ops_compute import ConvOp
from nnc.passes._common import Tally, constant_array, erase_if_dead
from nnc.passes._conv_algos import ConvShape, build_winograd, winograd_mults, winograd_problem
from nnc.passes.report import record


@dataclass
class MultTotals:
    """Multiplications of the rewritten convs, before and after (for the report)."""

    before: int = 0
    after: int = 0
    transforms: int = 0
    weight_bytes: tuple[int, int] = (0, 0)

    def add(self, direct: int, counts, old_weight: np.ndarray, new_weight: np.ndarray) -> None:
        self.before += direct
        self.after += counts.elementwise
        self.transforms += counts.transforms
        w0, w1 = self.weight_bytes
        self.weight_bytes = (w0 + old_weight.nbytes, w1 + new_weight.nbytes)

    def line(self) -> str:
        ratio = self.before / max(self.after, 1)
        w0, w1 = self.weight_bytes
        return (
            f"multiplications {self.before:,} -> {self.after:,} ({ratio:.2f}x fewer) "
            f"+ {self.transforms:,} in transforms; weights {w0:,} -> {w1:,} bytes"
        )


def rewrite_to_winograd(conv: ConvOp, tile: int, rewriter: PatternRewriter, totals: MultTotals):
    """Replace ``conv`` by ``nn.winograd_conv`` (applicability already checked)."""
    replace_conv(conv, build_winograd(conv, tile), winograd_mults, rewriter, totals, tile)


def replace_conv(conv: ConvOp, new_ops: list, mults, rewriter: PatternRewriter, totals, *args):
    """Replace ``conv`` by ``new_ops`` (the first makes the transformed weight), adding
    its multiplications (``mults(ConvShape, *args)``) and weight bytes to ``totals``."""
    s = ConvShape.of(conv)
    old_w = conv.w
    totals.add(
        s.direct_mults,
        mults(s, *args),
        constant_array(old_w),
        constant_array(new_ops[0].results[0]),
    )
    rewriter.replace(conv, new_ops)
    erase_if_dead(rewriter, [old_w])


@dataclass
class WinogradPattern(RewritePattern):
    tally: Tally
    tile: int
    totals: MultTotals

    @op_type_rewrite_pattern
    def match_and_rewrite(self, conv: ConvOp, rewriter: PatternRewriter) -> None:
        problem = winograd_problem(conv)
        if problem is not None:
            self.tally.decline(conv, problem)
            return
        rewrite_to_winograd(conv, self.tile, rewriter, self.totals)
        self.tally.did(f"conv -> winograd F({self.tile}x{self.tile},3x3)")


@dataclass(frozen=True)
class WinogradConvPass(ModulePass):
    """Rewrite 3x3 stride-1 convs to Winograd convs (see module docstring)."""

    name = "winograd-conv"

    tile: int = 2
    """Output tile size m of F(m x m, 3 x 3): 2 or 4."""

    def __post_init__(self) -> None:
        if self.tile not in (2, 4):
            raise InvalidOptionError(f"{self.name}: tile must be 2 or 4, got {self.tile}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally, totals = Tally(self.name), MultTotals()
        walker = PatternRewriteWalker(
            WinogradPattern(tally, self.tile, totals), apply_recursively=False
        )
        walker.rewrite_module(op)
        tally.record()
        if totals.before:
            record(self.name, totals.line())
