"""Choose the algorithm of every convolution: direct, im2col, Winograd F(2)/F(4) or FFT.

Before::

    %y = "nn.conv"(%x, %w, %b) <{...}>

After, depending on the choice::

    %y = "nn.conv"(%x, %w, %b) <{...}>                            // direct (default kernel)
    %y = "nn.conv"(%x, %w, %b) <{...}> {nn.conv_algo = "im2col"}  // explicit im2col + GEMM
    %y = "nn.winograd_conv"(%x, %u, %b) <{tile = 2 | 4, ...}>     // as winograd-conv
    %y = "nn.fft_conv"(%x, %wf, %b) <{...}>                       // as fft-conv

``algo`` (also ``nnc --conv-algo`` and ``nnc.compile(conv_algo=...)``):

* ``auto``: per layer, the cheapest by the cost model below, conservatively: a fast
  algorithm must be estimated at most ``margin`` times the direct cost, else direct.
* ``autotune``: per distinct layer shape, JIT-compile every applicable candidate kernel
  (nnc/backends/llvm/jit.py) and time it on random data; the fastest wins (direct unless
  another is faster by ``margin``). Costs compile time (about 1 s per shape).
* ``direct``, ``im2col``: that kernel for every conv (the attribute above tells lowering).
* ``winograd2``, ``winograd4``, ``fft``: that algorithm wherever it applies (see the
  winograd-conv / fft-conv preconditions); other convs stay direct, the report says why.

Cost model (``_conv_algos.estimate_cost``, in units of one GEMM micro-kernel FMA, the
constants fitted to kernel timings on an AVX-512 host): direct = M*C*KH*KW*OH*OW;
im2col = the same over OH*OW rounded up to micro-tile columns + im2col matrix traffic
(so auto never prefers it); Winograd = T*T GEMMs of M x C x (tiles rounded up to
micro-tile columns) + the transforms' additions and constant multiplications (x2.75:
scalar code) + scratch traffic; FFT = every multiplication of ``fft_mults`` (x4: not
register blocked). All add
the weight bytes streamed once per image (x2 per byte, x6 beyond 8 MB): Winograd's
weights are T*T/9 times the direct ones, FFT's 2*Hp*(Wp/2+1)/(KH*KW) times, which is
what rules them out on small planes with many channels (ResNet-18's 7x7x512 layers).

Measured, ResNet-18's 3x3 stride-1 layers, one AVX-512 core, ms (direct / F(2x2) /
F(4x4) / FFT), noisy shared machine: 56x56x64: 2.0 / 1.7 / 1.26 / 18.5;
28x28x128: 1.9 / 1.5 / 1.05 / 10.7; 14x14x256: 1.8 / 1.7 / 2.4 / 16;
7x7x512: 1.6 / 3.0 / 11 / 23. The model picks F(4x4) at 56x56 and 28x28, F(2x2) at
14x14, direct at 7x7 and for every 1x1/strided conv. FFT (ms, direct / FFT): 7x7 on
14x14x64: 0.52 / 0.63 (loses), 7x7 on 28x28x128: 17.9 / 16.2, 11x11 on 28x28x64:
16.9 / 3.4, 15x15 on 32x32x32: 3.6 / 1.0; the model picks it for the last two.

Preconditions: none for ``direct``/``im2col``. Winograd and FFT as in their passes
(constant f32 weights, stride 1, dilation 1, group 1, static shapes; 3x3 for Winograd).
The report counts the choices and the multiplications before/after.

Numeric contract: that of the chosen algorithm: exact for direct/im2col (same sums, other
order: float32 reassociation only), winograd-conv's and fft-conv's bounds otherwise.
"""

from __future__ import annotations

import ctypes
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
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
from nnc.passes._conv_algos import (
    ALGO_ATTR,
    ALGOS,
    ConvShape,
    common_problem,
    estimate_cost,
    winograd_problem,
)
from nnc.passes.fft_conv import rewrite_to_fft
from nnc.passes.report import record
from nnc.passes.winograd_conv import MultTotals, rewrite_to_winograd

FAST = ("winograd2", "winograd4", "fft")


def candidates(conv: ConvOp) -> list[str]:
    """Algorithms applicable to ``conv`` (direct and im2col always are)."""
    out = ["direct", "im2col"]
    if common_problem(conv) is None:
        if winograd_problem(conv) is None:
            out += ["winograd2", "winograd4"]
        out.append("fft")
    return out


def _kernel_and_shapes(conv: ConvOp, algo: str):
    """(KernelSpec, argument shapes) of ``conv`` computed by ``algo`` (for timing)."""
    from nnc.backends.llvm.lower import kernel_spec_for
    from nnc.backends.llvm.program import KernelSpec
    from nnc.passes._conv_algos import build_fft, build_winograd

    if algo in ("direct", "im2col"):
        spec = kernel_spec_for(conv)  # the default kernel, maybe on packed weights
        if algo == "im2col":
            kwargs = tuple(kv for kv in spec.kwargs if kv[0] != "w_layout")
            spec = KernelSpec("conv2d_im2col", kwargs)
        new = conv
    else:
        new = build_fft(conv)[-1] if algo == "fft" else build_winograd(conv, int(algo[-1]))[-1]
        spec = kernel_spec_for(new)
    shapes = [tuple(shape_of(v)) for v in new.operands] + [tuple(shape_of(new.results[0]))]
    return spec, shapes


def measure(conv: ConvOp, algo: str, runs: int = 5) -> float:
    """Fastest of ``runs`` calls of ``algo``'s kernel for ``conv``, in seconds (JIT,
    random data). The minimum, not the median: on a shared machine interference only
    ever adds time."""
    from llvmlite import ir

    from nnc.backends.llvm.jit import JitModule
    from nnc.backends.llvm.lower import emitter_function

    spec, shapes = _kernel_and_shapes(conv, algo)
    module = ir.Module()
    kfn = emitter_function(spec.emitter)(module, "k", **spec.kwargs_dict())
    jit = JitModule(module)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    if spec.kwargs_dict().get("w_layout") == "c16":  # lowering packs constant weights
        from nnc.backends.llvm.kernels.pack import pack_conv_weights

        arrays[1] = pack_conv_weights(arrays[1], conv.prop("group"))
    ptrs = [a.ctypes.data for a in arrays]
    if kfn.scratch_bytes:
        raw = np.zeros(kfn.scratch_bytes + 64, dtype=np.uint8)
        ptrs.append(raw.ctypes.data + (-raw.ctypes.data) % 64)
    fn = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(ptrs)))(jit.address("k"))
    fn(*ptrs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(*ptrs)
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def _signature(conv: ConvOp) -> tuple:
    return (
        tuple(shape_of(conv.x)), tuple(shape_of(conv.w)), conv.prop("strides"),
        conv.prop("pads"), conv.prop("dilations"), conv.prop("group"),
    )  # fmt: skip


@dataclass
class SelectPattern(RewritePattern):
    algo: str
    margin: float
    tally: Tally
    totals: MultTotals
    choices: Counter = field(default_factory=Counter)
    timings: dict = field(default_factory=dict)
    lines: dict = field(default_factory=dict)

    def choose(self, conv: ConvOp) -> str:
        cands = candidates(conv)
        if self.algo not in ("auto", "autotune"):
            if self.algo not in cands:
                why = winograd_problem(conv) if self.algo != "fft" else common_problem(conv)
                self.tally.decline(conv, f"{self.algo}: {why}; kept direct")
                return "direct"
            return self.algo
        if common_problem(conv) == "dynamic shape":
            return "direct"
        s = ConvShape.of(conv)
        if self.algo == "auto":
            costs = {a: estimate_cost(s, a) for a in cands}
        else:
            key = _signature(conv)
            if key not in self.timings:
                self.timings[key] = {a: measure(conv, a) for a in cands}
            costs = self.timings[key]
        best = min(costs, key=lambda a: costs[a])
        if costs[best] > self.margin * costs["direct"]:
            best = "direct"
        unit = "ms" if self.algo == "autotune" else "Mcost"
        scale = 1e3 if self.algo == "autotune" else 1e-6
        detail = ", ".join(f"{a} {costs[a] * scale:.3g}" for a in cands)
        self.lines[_signature(conv)] = f"{_describe(s)}: {best} ({unit}: {detail})"
        return best

    @op_type_rewrite_pattern
    def match_and_rewrite(self, conv: ConvOp, rewriter: PatternRewriter) -> None:
        if ALGO_ATTR in conv.attributes:
            return
        algo = self.choose(conv)
        self.choices[algo] += 1
        if algo == "direct" and self.algo in ("auto", "autotune"):
            return  # the default kernel: leave the conv as it is
        if algo in ("direct", "im2col"):
            conv.attributes[ALGO_ATTR] = StringAttr(algo)
            rewriter.handle_operation_modification(conv)
        elif algo == "fft":
            rewrite_to_fft(conv, rewriter, self.totals)
        else:
            rewrite_to_winograd(conv, int(algo[-1]), rewriter, self.totals)


def _describe(s: ConvShape) -> str:
    return f"conv {s.c}->{s.mo} {s.kh}x{s.kw} on {s.h}x{s.w}"


@dataclass(frozen=True)
class SelectConvAlgoPass(ModulePass):
    """Pick each conv's algorithm by cost model, measurement or force (module docstring)."""

    name = "select-conv-algo"

    algo: str = "auto"
    """auto, autotune, direct, im2col, winograd2, winograd4 or fft."""

    margin: float = 0.75
    """auto/autotune: a fast algorithm must cost at most margin x direct to be chosen."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise InvalidOptionError(
                f"{self.name}: unknown algo '{self.algo}' (choose from {', '.join(ALGOS)})"
            )
        if not 0 < self.margin <= 10:
            raise InvalidOptionError(f"{self.name}: margin must be in (0, 10], got {self.margin}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally, totals = Tally(self.name), MultTotals()
        pattern = SelectPattern(self.algo, self.margin, tally, totals)
        PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(op)
        for algo, n in sorted(pattern.choices.items()):
            tally.did(f"{algo}")
            tally.done[algo] = n
        tally.record()
        for line in pattern.lines.values():
            record(self.name, line)
        if totals.before:
            record(self.name, totals.line())
