"""Keep pruned / clustered conv weights compressed in the library (decode once at run).

Before (weight 80% zeros, e.g. after ``prune{sparsity=0.8}``)::

    %y = "nn.conv"(%x, %w, %b) <{...}>

After::

    %y = "nn.conv"(%x, %w, %b) <{...}> {nn.compact_weight = "sparse", nn.conv_algo = "direct"}

Targets: every ``nn.conv`` with an f32 constant weight, group 1, a static 4-D input,
the direct ``c16`` layout rule (``kernels/pack.choose_conv_layout``) and no algorithm
chosen yet, whose weight some ``kernels/compact_pack.py`` format (sparse bitmask +
values, 4/8-bit codebook indices, or both) stores in less than ``SAVING`` (0.9) times
its dense float32 bytes. ``nn.compact_weight`` names the smallest format; LLVM lowering
re-checks it on the final weight and then stores that format in the library and decodes
it once, on the first run, into the direct or Winograd float32 layout
(``kernels/compact_conv.py``). ``nn.conv_algo = "direct"`` keeps ``select-conv-algo``
from precomputing (dense) Winograd weights: lowering picks Winograd itself by the same
cost rule.

Preconditions: none; other convs are left unchanged (reported). Run after the
compression passes (``--compress`` does when ``prune`` or ``cluster`` is given).

Numeric contract: exact. The IR value is unchanged (discardable attributes only); the
compiled kernels compute the float32 conv on the bit-identical decoded weight.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from nnc.ir import ops_compute as oc
from nnc.ir.builder import main_func
from nnc.ir.types import DYNAMIC, dtype_of, shape_of
from nnc.passes._common import Tally

ATTR = "nn.compact_weight"
ALGO_ATTR = "nn.conv_algo"


def _problem(conv: oc.ConvOp) -> str | None:
    """Why ``conv`` cannot store its weight compressed (None: it can)."""
    from nnc.backends.llvm.kernels.pack import choose_conv_layout

    w = conv.operand_named("w")
    if not isinstance(w.owner, oc.ConstantOp) or dtype_of(w) != "f32":
        return "weight is not an f32 constant"
    if conv.prop("group") != 1:
        return "grouped conv"
    if ALGO_ATTR in conv.attributes:
        return "algorithm already chosen"
    x = tuple(shape_of(conv.operand_named("x")))
    if len(x) != 4 or DYNAMIC in x:
        return "input is not a static 4-D tensor"
    if choose_conv_layout(x, tuple(shape_of(w)), 1, True) != "c16":
        return "not a direct c16 conv"
    return None


@dataclass(frozen=True)
class CompactWeightsPass(ModulePass):
    """Mark convs whose weight pays to store compressed (module docstring)."""

    name = "compact-weights"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from nnc.backends.llvm.kernels.compact_pack import choose_format

        tally = Tally(self.name)
        for conv in main_func(op).body.blocks[0].ops:
            if not isinstance(conv, oc.ConvOp):
                continue
            why = _problem(conv)
            fmt = None
            if why is None:
                fmt = choose_format(conv.operand_named("w").owner.prop("value").array)
                why = None if fmt is not None else "no compressed format is smaller"
            if why is not None:
                tally.decline(conv, why)
                continue
            conv.attributes[ATTR] = StringAttr(fmt)
            conv.attributes[ALGO_ATTR] = StringAttr("direct")
            tally.did(fmt)
        tally.record()
