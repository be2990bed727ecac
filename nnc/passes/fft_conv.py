"""Rewrite large-kernel stride-1 convolutions to FFT convolutions.

Before::

    %y = "nn.conv"(%x, %w, %b, %r) <{strides = [1, 1], dilations = [1, 1], group = 1,
                                     pads = P, activation = A}>      // w: (M, C, KH, KW)

After (Hp x Wp = the padded input plane, F = Hp * (Wp/2 + 1) frequencies)::

    %wf = "nn.constant"() <{value = conj(rfft2(w, (Hp, Wp)))}>      // (M, C, 2, F)
    %y = "nn.fft_conv"(%x, %wf, %b, %r) <{kernel = [KH, KW], pads = P,
                                          fft_shape = [Hp, Wp], activation = A}>

Math: cross-correlation is a product in the frequency domain,
``y = irfft2(sum_c rfft2(x_c) * conj(rfft2(w_mc)))``, circular over Hp x Wp; since the
kernel fits in the padded plane the first (Hp-KH+1) x (Wp-KW+1) outputs (= the conv's)
never wrap. The weight transform is done here, in float64 with numpy, and stored
rounded once to float32 (it is Hp*Wp/(KH*KW) times larger than the kernel: FFT
convolution trades weight memory for arithmetic). The kernel computes the DFTs as
products with constant cos/sin tables (no radix-2 size restriction).

Where it wins, where not (multiplications, see the report): the channel-mixing stage
costs 4 * M * C * Hp * (Wp/2+1) real multiplications, independent of the kernel size,
vs M * C * OH * OW * KH * KW for the direct conv: it pays off only for large kernels on
small planes with many channels (7x7 on 14x14: 11x fewer in that stage; at 16
channels the DFTs add back 28% of the direct count), never for 1x1/3x3, and the DFT
stages (O(C * Hp * Wp * (Hp + Wp))) dominate for few channels. Our DFT loops are
not register-blocked like the GEMM micro-kernel, so measured latency wins are smaller
than the multiplication counts (one AVX-512 core, ms, direct / FFT: 7x7 on 14x14x64
0.52 / 0.63, 11x11 on 28x28x64 16.9 / 3.4, 15x15 on 32x32x32 3.6 / 1.0; 3x3 on
56x56x64 2.0 / 15). ``select-conv-algo`` only picks it when its cost model says so.

Preconditions (otherwise the conv is unchanged and the report says why): ``nn.conv``
with a constant f32 weight, stride 1, dilation 1, group 1, static shapes, and
``max(KH, KW) >= min-kernel``. Any padding, bias, residual and activation.

Numeric contract: exact in real arithmetic. In float32 the error is spread over the
plane; with ``mag = max over the output plane (n, m) of |W| (*) |X|`` and u = 2**-24,
elementwise, for the interpreter and the native kernel (whose DFTs are plain sums, so
the bound grows with Hp + Wp rather than log(Hp * Wp))::

    |after - before| <= 2 * (Hp + Wp) * u * mag + 4u * |before|

(measured worst |err| / (u * mag): 0.3 interpreter, 1.5 kernel, over random layers).
"""

from __future__ import annotations

from dataclasses import dataclass

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
from nnc.ir.types import shape_of
from nnc.passes._common import Tally
from nnc.passes._conv_algos import build_fft, common_problem, fft_mults
from nnc.passes.report import record
from nnc.passes.winograd_conv import MultTotals, replace_conv


def rewrite_to_fft(conv: ConvOp, rewriter: PatternRewriter, totals: MultTotals) -> None:
    """Replace ``conv`` by ``nn.fft_conv`` (applicability already checked)."""
    replace_conv(conv, build_fft(conv), fft_mults, rewriter, totals)


@dataclass
class FFTPattern(RewritePattern):
    tally: Tally
    min_kernel: int
    totals: MultTotals

    @op_type_rewrite_pattern
    def match_and_rewrite(self, conv: ConvOp, rewriter: PatternRewriter) -> None:
        problem = common_problem(conv)
        if problem is None and max(shape_of(conv.w)[2:]) < self.min_kernel:
            problem = f"kernel smaller than {self.min_kernel}x{self.min_kernel}"
        if problem is not None:
            self.tally.decline(conv, problem)
            return
        rewrite_to_fft(conv, rewriter, self.totals)
        self.tally.did("conv -> fft conv")


@dataclass(frozen=True)
class FFTConvPass(ModulePass):
    """Rewrite large-kernel stride-1 convs to FFT convs (see module docstring)."""

    name = "fft-conv"

    min_kernel: int = 5
    """Smallest kernel size (max of KH, KW) rewritten."""

    def __post_init__(self) -> None:
        if self.min_kernel < 1:
            raise InvalidOptionError(f"{self.name}: min-kernel must be >= 1, got {self.min_kernel}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally, totals = Tally(self.name), MultTotals()
        walker = PatternRewriteWalker(
            FFTPattern(tally, self.min_kernel, totals), apply_recursively=False
        )
        walker.rewrite_module(op)
        tally.record()
        if totals.before:
            record(self.name, totals.line())
