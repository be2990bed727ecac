"""nchwc-layout: run chains of convolutions in the blocked channel layout (NCHWc).

Before::

    %a = nn.conv(%x, %w1, %b1) {activation = relu}
    %r = nn.relu(%a)                      // any elementwise op
    %y = nn.conv(%r, %w2, %b2, %a)        // residual

After (``block = 16``)::

    %xb = nn.to_blocked(%x) {block = 16}
    %ab = nn.conv_blocked(%xb, %w1, %b1)
    %rb = nn.relu(%ab)
    %yb = nn.conv_blocked(%rb, %w2, %b2, %ab)
    %y  = nn.from_blocked(%yb) {channels = M}

Preconditions: static shapes; the pass is meant to run last (after fusion and
``select-conv-algo``): other passes match ``nn.conv`` and do not know the blocked ops.

Walks ``main`` in order. An eligible conv (``nn.conv``, float32, constant weight, not
forced to im2col; group 1 where the direct kernel's per-layer rule of ``kernels/pack.py``
picks the packed layout, or depthwise with multiplier 1) becomes ``nn.conv_blocked``; a
max pool or an elementwise unary op whose operand is blocked, and a binary op whose two
operands are blocked with equal shapes (no broadcasting), run on the blocked tensors.
Every rewritten op is followed by a ``from_blocked`` that takes over the old result's
uses, and an operand that needs to be blocked reuses the blocked value behind a
``from_blocked`` (layout-transform elimination: ``to_blocked(from_blocked(v)) -> v``)
or else gets one ``to_blocked`` (shared by all later users). Transforms nobody uses are
erased at the end, so transforms remain only at a chain's borders (its inputs, and
values that non-blocked ops such as average/global pools, concats or gemms read).
Winograd/FFT convs (``select-conv-algo`` ran first) are other ops and keep NCHW.

Numeric contract: exact (the same arithmetic on the same values; only storage order
changes). Channels of a block's tail are never read (see ``nnc/ir/ops_blocked.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from nnc.errors import InvalidOptionError
from nnc.ir.builder import main_func
from nnc.ir.nn_base import TensorSpec
from nnc.ir.ops_blocked import ConvBlockedOp, FromBlockedOp, MaxPoolBlockedOp, ToBlockedOp
from nnc.ir.ops_compute import ConstantOp, ConvOp, MaxPoolOp
from nnc.ir.ops_elementwise import BinaryOp, UnaryOp
from nnc.passes._common import Tally

#: Block sizes the option accepts (the native conv kernel supports 16 only).
BLOCKS = (4, 8, 16)


def eligible(conv: ConvOp) -> str | None:
    """Why ``conv`` stays NCHW, or None when it can run blocked."""
    from nnc.backends.llvm.kernels.pack import choose_conv_layout

    x, w = TensorSpec.of(conv.operand_named("x")), TensorSpec.of(conv.operand_named("w"))
    if x.dtype != "f32" or x.rank != 4 or w.rank != 4:
        return "not a float32 2-D conv"
    group = conv.prop("group")
    depthwise = group == x.shape[1] == w.shape[0] and w.shape[1] == 1
    if group != 1 and not depthwise:
        return "grouped conv (not depthwise)"
    if not isinstance(conv.operand_named("w").owner, ConstantOp):
        return "weight is not a constant"
    algo = conv.attributes.get("nn.conv_algo")
    if getattr(algo, "data", None) == "im2col":
        return "im2col forced"
    if not depthwise and choose_conv_layout(x.shape, w.shape, 1, True) != "c16":
        return "the direct kernel's layout rule keeps it NCHW"
    return None


class _Rewrite:
    def __init__(self, block: int, tally: Tally):
        self.block, self.tally = block, tally
        self.to_blocked: dict[SSAValue, SSAValue] = {}

    def existing(self, value: SSAValue) -> SSAValue | None:
        """The blocked value ``value`` is a view of, if any (no new op)."""
        owner = value.owner
        if isinstance(owner, FromBlockedOp) and TensorSpec.of(owner.x).shape[-1] == self.block:
            return owner.x
        return self.to_blocked.get(value)

    def blocked(self, value: SSAValue, before: Operation) -> SSAValue:
        """``value`` in the blocked layout, inserting one ``to_blocked`` if needed."""
        found = self.existing(value)
        if found is None:
            op = ToBlockedOp(value, block=self.block)
            Rewriter.insert_op(op, _before(before))
            found = self.to_blocked[value] = op.results[0]
        return found

    def replace(self, old: Operation, new: Operation, channels: int) -> None:
        """Put ``new`` (blocked) and a ``from_blocked`` in place of ``old``."""
        back = FromBlockedOp(new, channels=channels)
        Rewriter.insert_op([new, back], _before(old))
        old.results[0].replace_all_uses_with(back.results[0])
        Rewriter.erase_op(old)

    def visit(self, op: Operation) -> None:
        if type(op) is ConvOp:
            why = eligible(op)
            if why is not None:
                self.tally.decline(op, why)
                return
            bias, res = op.operand_named("bias"), op.operand_named("residual")
            x = self.blocked(op.operand_named("x"), op)
            r = None if res is None else self.blocked(res, op)
            new = ConvBlockedOp(x, op.operand_named("w"), bias, r, **op.props_dict())
            self.replace(op, new, TensorSpec.of(op.results[0]).shape[1])
            self.tally.did("blocked convs")
        elif isinstance(op, MaxPoolOp) and _nchw(op.operands[0]):
            x = self.existing(op.operands[0])
            if x is not None:
                channels = TensorSpec.of(op.results[0]).shape[1]
                self.replace(op, MaxPoolBlockedOp(x, **op.props_dict()), channels)
                self.tally.did("blocked max pools")
        elif isinstance(op, UnaryOp) and _nchw(op.operands[0]):
            x = self.existing(op.operands[0])
            if x is not None:
                channels = TensorSpec.of(op.results[0]).shape[1]
                self.replace(op, type(op)(x, **op.props_dict()), channels)
                self.tally.did("blocked elementwise ops")
        elif isinstance(op, BinaryOp) and _same_nchw(op):
            a, b = (self.existing(v) for v in op.operands)
            if a is not None and b is not None:
                channels = TensorSpec.of(op.results[0]).shape[1]
                self.replace(op, type(op)(a, b, **op.props_dict()), channels)
                self.tally.did("blocked elementwise ops")


def _nchw(value: SSAValue) -> bool:
    spec = TensorSpec.of(value)
    return spec.rank == 4 and spec.dtype == "f32"


def _same_nchw(op: Operation) -> bool:
    a, b = op.operands
    return _nchw(a) and TensorSpec.of(a) == TensorSpec.of(b) == TensorSpec.of(op.results[0])


def _before(op: Operation):
    from xdsl.rewriter import InsertPoint

    return InsertPoint.before(op)


def eliminate_round_trips(ops: list[Operation], block: int | None = None) -> int:
    """``to_blocked(from_blocked(v))`` -> ``v`` (same block), then erase unused transforms;
    returns how many ``to_blocked`` ops were bypassed."""
    bypassed = 0
    for op in ops:
        if isinstance(op, ToBlockedOp) and isinstance(op.x.owner, FromBlockedOp):
            src = op.x.owner.x
            if TensorSpec.of(src) == TensorSpec.of(op.results[0]):
                op.results[0].replace_all_uses_with(src)
                bypassed += 1
    for op in reversed(ops):
        if isinstance(op, ToBlockedOp | FromBlockedOp) and not op.results[0].uses:
            if op.parent is not None:
                Rewriter.erase_op(op)
    return bypassed


@dataclass(frozen=True)
class NCHWcLayoutPass(ModulePass):
    """Blocked channel layout for conv chains (see the module docstring)."""

    name = "nchwc-layout"

    block: int = 16
    """Channels per block (4, 8 or 16; the native conv kernel needs 16)."""

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise InvalidOptionError(
                f"nchwc-layout: block must be one of {', '.join(map(str, BLOCKS))}, "
                f"got {self.block}"
            )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        body = main_func(op).body.blocks[0]
        rewrite = _Rewrite(self.block, tally)
        for inner in list(body.ops):
            rewrite.visit(inner)
        bypassed = eliminate_round_trips(list(body.ops))
        if bypassed:
            tally.did("from_blocked -> to_blocked pairs removed")
        transforms = sum(isinstance(o, ToBlockedOp | FromBlockedOp) for o in body.ops)
        if tally.done:
            tally.did("layout transforms left")
            tally.done["layout transforms left"] = transforms
        tally.record()
