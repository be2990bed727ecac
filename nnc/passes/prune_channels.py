"""Structured filter/channel pruning by L1/L2 norm: remove whole output channels.

Before (``prune-channels{ratio=0.25 norm=l1}``, 8 output channels)::

    %y = "nn.conv"(%x, %w, %b)        : tensor<1x3x8x8>, tensor<8x3x3x3>  -> tensor<1x8x8x8>
    %z = "nn.conv"(%y, %w2, %b2)      : tensor<1x8x8x8>, tensor<4x8x3x3>  -> tensor<1x4x8x8>

After (the 2 filters of ``%w`` with the smallest L1 norms are gone, and so are the
matching input channels of every consumer)::

    %y = "nn.conv"(%x, %w', %b')      : tensor<6x3x3x3>  -> tensor<1x6x8x8>
    %z = "nn.conv"(%y, %w2', %b2)     : tensor<4x6x3x3>  -> tensor<1x4x8x8>

Channel groups. Channels are tracked along axis 1 of every value. A conv (group 1) or
gemm (``trans_a=0``) with a constant weight *produces* a new channel space (its output
channels / features); channel-preserving ops pass their input's space on: unary ops,
batch_norm, pools, global pools, depthwise convs (``group == C == M``), binary ops
with a per-channel or scalar constant, a reshape that flattens NCHW to (N, C*H*W) (each
channel becomes a block of H*W features). A binary op of two full-size tensors and a
conv's fused ``residual`` *merge* spaces (union-find): a residual add group keeps the
same channels in every producer. A concat along axis 1 builds a composite space from
its parts. A space touching a model input, a returned value, a dtype other than f32 or
any other op (transpose, softmax over channels, matmul, slice, grouped conv, ...) is
*fixed*: none of its channels are removed.

Math. For each prunable space with C channels and producers P, the score of channel c
is ``sum_{p in P} ||W_p[c]||`` (L1: sum of |w|; L2: Euclidean) over the producer's
filter/feature row c. The ``round(ratio * C)`` lowest-scoring channels are removed
(at least one channel is kept; ties: lower index kept). Every producer loses those
output rows (weights, bias, gemm bias ``c``), every consumer loses the matching input
slices (conv ``w[:, keep]``, gemm rows of B, batch-norm parameters, per-channel
constants, depthwise filters and ``group``), reshape targets shrink. The kept channel
indices are recorded on each producer as the discardable attribute
``nn.kept_channels`` (the hook a fine-tuner uses to map weights back).

Preconditions: static shapes (run after ``specialize-shapes``); weights are
``nn.constant``. Best after ``fold-batchnorm`` (a batch norm's scale then counts in the
norms) and before or after ``fuse-activation`` (both forms are handled).

Numeric contract: bounded change, not exactness. The result equals the original model
with the removed channels' producer outputs replaced by zero *before the bias and
activation*... more precisely: the new model computes exactly (up to float32 rounding
of the unchanged arithmetic) the original model in which every removed channel's value
is dropped from all consumers. The change at a consumer's output is bounded by
``sum_{removed c} |W_cons[:, c]| (*) |y_c|`` where ``y_c`` is the removed channel's
activation; the pass gives no bound on accuracy (fine-tune to recover).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import DenseArrayBase, ModuleOp, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from nnc.errors import InvalidOptionError
from nnc.ir import ops_compute as oc
from nnc.ir import ops_shape as osh
from nnc.ir.builder import main_func, return_op
from nnc.ir.nn_base import NNOp
from nnc.ir.ops_elementwise import BinaryOp, UnaryOp
from nnc.ir.types import dtype_of, shape_of
from nnc.passes._common import Tally, constant_array

_PRESERVING = (
    UnaryOp,
    oc.BatchNormOp,
    oc.MaxPoolOp,
    oc.AvgPoolOp,
    oc.GlobalAvgPoolOp,
    oc.GlobalMaxPoolOp,
)


@dataclass(frozen=True)
class _Base:
    """Channel space of a value: union-find node ``node``, ``block`` features per channel."""

    node: int
    block: int = 1


@dataclass(frozen=True)
class _Concat:
    """Composite space of a channel concat: (part space, channel count) in order."""

    parts: tuple[tuple[_Base, int], ...]


@dataclass
class _Analysis:
    parent: list[int] = field(default_factory=list)
    fixed: set[int] = field(default_factory=set)
    producers: dict[int, list[Operation]] = field(default_factory=dict)
    space: dict[SSAValue, _Base | _Concat] = field(default_factory=dict)
    channels: dict[int, int] = field(default_factory=dict)

    def new(self, channels: int, fixed: bool = False) -> _Base:
        self.parent.append(len(self.parent))
        node = len(self.parent) - 1
        self.channels[node] = channels
        if fixed:
            self.fixed.add(node)
        return _Base(node)

    def find(self, n: int) -> int:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def union(self, a: _Base | _Concat, b: _Base | _Concat) -> None:
        if isinstance(a, _Base) and isinstance(b, _Base) and a.block == b.block:
            ra, rb = self.find(a.node), self.find(b.node)
            if ra != rb:
                self.parent[rb] = ra
                if rb in self.fixed:
                    self.fixed.add(ra)
                self.producers.setdefault(ra, []).extend(self.producers.pop(rb, []))
            return
        if a != b:
            self.fix(a)
            self.fix(b)

    def fix(self, s: _Base | _Concat | None) -> None:
        if isinstance(s, _Base):
            self.fixed.add(s.node)
        elif isinstance(s, _Concat):
            for part, _ in s.parts:
                self.fixed.add(part.node)

    def is_fixed(self, node: int) -> bool:
        return any(self.find(f) == self.find(node) for f in self.fixed)

    def of(self, v: SSAValue) -> _Base | _Concat | None:
        return self.space.get(v)


def _channels(v: SSAValue) -> int:
    shape = shape_of(v)
    return shape[1] if len(shape) >= 2 else 1


def _analyse(module: ModuleOp) -> _Analysis:
    an = _Analysis()
    block = main_func(module).body.blocks[0]
    for arg in block.args:
        an.space[arg] = an.new(_channels(arg), fixed=True)
    for op in block.ops:
        if op is return_op(module):
            for v in op.operands:
                an.fix(an.of(v))
            break
        if isinstance(op, oc.ConstantOp):
            continue
        _analyse_op(an, op)
    return an


def _fresh_fixed(an: _Analysis, op: Operation) -> None:
    for v in op.operands:
        if not isinstance(v.owner, oc.ConstantOp):
            an.fix(an.of(v))
    for r in op.results:
        an.space[r] = an.new(_channels(r), fixed=True)


def _per_channel_const(arr: np.ndarray, out_rank: int, channels: int) -> bool:
    """True when ``arr`` broadcasts against a rank-``out_rank`` value along axis 1 only
    (dims other than axis 1 are 1, axis 1 is 1 or ``channels``), or is a scalar."""
    if arr.ndim > out_rank:
        return False
    shape = (1,) * (out_rank - arr.ndim) + tuple(arr.shape)
    return all(d == 1 for i, d in enumerate(shape) if i != 1) and shape[1] in (1, channels)


def _analyse_op(an: _Analysis, op: Operation) -> None:
    if not all(dtype_of(v) == "f32" for v in (*op.operands, *op.results)):
        _fresh_fixed(an, op)
        return
    if isinstance(op, oc.ConvOp):
        _analyse_conv(an, op)
    elif isinstance(op, oc.GemmOp):
        _analyse_gemm(an, op)
    elif isinstance(op, BinaryOp):
        _analyse_binary(an, op)
    elif isinstance(op, _PRESERVING):
        x = an.of(op.operands[0])
        if isinstance(op, oc.BatchNormOp) and any(
            constant_array(v) is None for v in op.operands[1:]
        ):
            _fresh_fixed(an, op)
            return
        if isinstance(x, _Base) and x.block != 1 and not isinstance(op, UnaryOp):
            _fresh_fixed(an, op)
            return
        an.space[op.results[0]] = x
    elif isinstance(op, osh.ReshapeOp):
        x, xs, ys = an.of(op.operands[0]), shape_of(op.operands[0]), shape_of(op.results[0])
        flatten = len(xs) == 4 and len(ys) == 2 and ys[0] == xs[0]
        if isinstance(x, _Base) and flatten:
            an.space[op.results[0]] = _Base(x.node, x.block * xs[2] * xs[3])
        elif isinstance(x, _Concat) and flatten:
            hw = xs[2] * xs[3]
            an.space[op.results[0]] = _Concat(
                tuple((_Base(p.node, p.block * hw), n) for p, n in x.parts)
            )
        else:
            _fresh_fixed(an, op)
    elif isinstance(op, osh.ConcatOp):
        rank = len(shape_of(op.results[0]))
        parts = [an.of(v) for v in op.operands]
        if op.prop("axis") % rank == 1 and rank == 4 and all(isinstance(p, _Base) for p in parts):
            an.space[op.results[0]] = _Concat(
                tuple((p, _channels(v)) for p, v in zip(parts, op.operands))
            )
        else:
            _fresh_fixed(an, op)
    else:
        _fresh_fixed(an, op)


def _analyse_conv(an: _Analysis, op: oc.ConvOp) -> None:
    x, w = an.of(op.x), constant_array(op.w)
    bias = op.operand_named("bias")
    m, cg = w.shape[:2] if w is not None else (0, 0)
    c = _channels(op.x)
    ok = w is not None and (bias is None or constant_array(bias) is not None)
    ok = ok and x is not None and (not isinstance(x, _Base) or x.block == 1)
    group = op.prop("group")
    if ok and group == 1:
        out = an.new(m)
        an.producers[out.node] = [op]
    elif ok and group == c == m and cg == 1:
        out = x  # depthwise: channel c in, channel c out
    else:
        _fresh_fixed(an, op)
        return
    an.space[op.results[0]] = out
    residual = op.operand_named("residual")
    if residual is not None:
        if constant_array(residual) is not None:
            an.fix(out)
        else:
            an.union(out, an.of(residual))


def _analyse_gemm(an: _Analysis, op: oc.GemmOp) -> None:
    b, c_val = constant_array(op.b), op.operand_named("c")
    a = an.of(op.a)
    if b is None or op.prop("trans_a") or a is None:
        _fresh_fixed(an, op)
        return
    n = shape_of(op.results[0])[1]
    out = an.new(n)
    an.producers[out.node] = [op]
    an.space[op.results[0]] = out
    if c_val is not None:
        c = constant_array(c_val)
        if c is None:
            if tuple(shape_of(c_val)) == tuple(shape_of(op.results[0])):
                an.union(out, an.of(c_val))
            else:
                an.fix(an.of(c_val))
                an.fix(out)


def _analyse_binary(an: _Analysis, op: BinaryOp) -> None:
    out_shape = shape_of(op.results[0])
    consts = [constant_array(v) for v in op.operands]
    spaces = [an.of(v) for v in op.operands]
    full = [tuple(shape_of(v)) == tuple(out_shape) for v in op.operands]
    channels = out_shape[1] if len(out_shape) >= 2 else 1
    if consts[0] is None and consts[1] is None:
        if all(full):
            an.union(spaces[0], spaces[1])
            an.space[op.results[0]] = an.of(op.operands[0])
            return
        _fresh_fixed(an, op)
        return
    for i in (0, 1):
        other = consts[1 - i]
        if consts[i] is None and full[i] and other is not None:
            if _per_channel_const(other, len(out_shape), channels):
                an.space[op.results[0]] = spaces[i]
                return
    _fresh_fixed(an, op)


# -- decisions ---------------------------------------------------------------------------


def _row_norms(op: Operation, norm: str) -> np.ndarray:
    """Per output channel norm of a producer's weight (float64)."""
    if isinstance(op, oc.ConvOp):
        rows = constant_array(op.w).reshape(constant_array(op.w).shape[0], -1)
    else:
        b = constant_array(op.b)
        rows = b if op.prop("trans_b") else b.T
    rows = np.abs(rows.astype(np.float64))
    return rows.sum(axis=1) if norm == "l1" else np.sqrt((rows * rows).sum(axis=1))


def _decide(an: _Analysis, ratio: float, norm: str) -> dict[int, np.ndarray]:
    """root node -> sorted kept channel indices (only for spaces that shrink)."""
    keep: dict[int, np.ndarray] = {}
    roots = {an.find(n) for n in range(len(an.parent))}
    fixed_roots = {an.find(f) for f in an.fixed}
    for root in sorted(roots - fixed_roots):
        producers = an.producers.get(root, [])
        channels = an.channels[root]
        n_remove = min(int(round(ratio * channels)), channels - 1)
        if not producers or n_remove <= 0:
            continue
        score = sum(_row_norms(p, norm) for p in producers)
        order = np.argsort(-score, kind="stable")
        keep[root] = np.sort(order[: channels - n_remove])
    return keep


# -- rewrite -----------------------------------------------------------------------------


def _expand(idx: np.ndarray, block: int) -> np.ndarray:
    return (idx[:, None] * block + np.arange(block)[None, :]).reshape(-1)


def _keep_of(an: _Analysis, keep: dict[int, np.ndarray], s) -> np.ndarray | None:
    """Kept indices along axis 1 of a value in space ``s`` (None: unchanged)."""
    if isinstance(s, _Base):
        k = keep.get(an.find(s.node))
        return None if k is None else _expand(k, s.block)
    if isinstance(s, _Concat):
        pieces, changed, offset = [], False, 0
        for part, n in s.parts:
            k = _keep_of(an, keep, part)
            changed |= k is not None
            pieces.append((np.arange(n * part.block) if k is None else k) + offset)
            offset += n * part.block
        return np.concatenate(pieces) if changed else None
    return None


class _Rewrite:
    def __init__(self, an: _Analysis, keep: dict[int, np.ndarray], tally: Tally):
        self.an, self.keep, self.tally = an, keep, tally
        self.changed: set[SSAValue] = set()
        self.rewriter = Rewriter()

    def keep_in(self, v: SSAValue) -> np.ndarray | None:
        return _keep_of(self.an, self.keep, self.an.of(v))

    def const(self, op: Operation, arr: np.ndarray) -> SSAValue:
        new = oc.ConstantOp(value=np.ascontiguousarray(arr, dtype=np.float32))
        self.rewriter.insert_op(new, _before(op))
        return new.results[0]

    def run(self, module: ModuleOp) -> None:
        block = main_func(module).body.blocks[0]
        for op in list(block.ops):
            if isinstance(op, NNOp) and not isinstance(op, oc.ConstantOp) and op.parent:
                self.visit(op)

    def visit(self, op: NNOp) -> None:
        out_space = self.an.of(op.results[0]) if op.results else None
        k_out = _keep_of(self.an, self.keep, out_space)
        changed_in = any(v in self.changed for v in op.operands)
        if k_out is None and not changed_in:
            return
        operands = {name: op.operand_named(name) for name in (*op.OPERANDS, *op.OPTIONAL)}
        props = op.props_dict()
        kind = None
        if isinstance(op, oc.ConvOp):
            kind = self.conv(op, operands, props, k_out)
        elif isinstance(op, oc.GemmOp):
            kind = self.gemm(op, operands, props, k_out)
        elif isinstance(op, oc.BatchNormOp):
            for name in ("scale", "bias", "mean", "var"):
                operands[name] = self.const(op, constant_array(operands[name])[k_out])
        elif isinstance(op, BinaryOp):
            rank = len(shape_of(op.results[0]))
            for name in op.OPERANDS:
                arr = constant_array(operands[name])
                axis = None if arr is None else 1 - (rank - arr.ndim)
                if axis is not None and axis >= 0 and arr.shape[axis] > 1:
                    operands[name] = self.const(op, np.take(arr, k_out, axis=axis))
        elif isinstance(op, osh.ReshapeOp):
            old_f = shape_of(op.results[0])[1]
            new_f = len(k_out) if k_out is not None else old_f
            props["shape"] = tuple(new_f if d == old_f else d for d in props["shape"])
        if op.VARIADIC is not None:
            new = type(op)(*op.operands, **props)
        else:
            new = type(op)(*operands.values(), **props)
        for key, attr in op.attributes.items():
            new.attributes[key] = attr
        if kind is not None and k_out is not None:
            new.attributes["nn.kept_channels"] = DenseArrayBase.from_list(i64, k_out.tolist())
            self.tally.did(f"pruned {op.name} output channels")
        old_operands = list(op.operands)
        for old, fresh in zip(op.results, new.results, strict=True):
            self.an.space[fresh] = self.an.space[old]
            if shape_of(old) != shape_of(fresh):
                self.changed.add(fresh)
        self.rewriter.replace_op(op, new)
        _erase_dead(old_operands)

    def conv(self, op: oc.ConvOp, operands, props, k_out) -> str:
        w = constant_array(op.w)
        k_in = self.keep_in(op.x)
        bias = operands["bias"]
        if props["group"] != 1:  # depthwise: rows follow the input channels
            k = k_in if k_in is not None else np.arange(w.shape[0])
            operands["w"] = self.const(op, w[k])
            if bias is not None:
                operands["bias"] = self.const(op, constant_array(bias)[k])
            props["group"] = len(k)
            return None
        if k_out is not None:
            w = w[k_out]
            if bias is not None:
                operands["bias"] = self.const(op, constant_array(bias)[k_out])
        if k_in is not None:
            w = w[:, k_in]
        operands["w"] = self.const(op, w)
        return "conv"

    def gemm(self, op: oc.GemmOp, operands, props, k_out) -> str:
        b = constant_array(op.b)
        if props["trans_b"]:
            b = b.T  # (K, N)
        k_in = self.keep_in(op.a)
        if k_in is not None:
            b = b[k_in]
        if k_out is not None:
            b = b[:, k_out]
            c = constant_array(operands["c"]) if operands["c"] is not None else None
            if c is not None and c.ndim >= 1 and c.shape[-1] > 1:
                operands["c"] = self.const(op, c[..., k_out])
        operands["b"] = self.const(op, b.T if props["trans_b"] else b)
        return "gemm"


def _erase_dead(values: list[SSAValue]) -> None:
    """Erase the constants among ``values``' producers that lost their last use."""
    for v in values:
        owner = v.owner
        if isinstance(owner, oc.ConstantOp) and owner.parent is not None and not v.uses:
            Rewriter.erase_op(owner)


def _before(op: Operation) -> InsertPoint:
    return InsertPoint.before(op)


@dataclass(frozen=True)
class PruneChannelsPass(ModulePass):
    """Remove the lowest-norm output channels of convs/gemms (see module docstring)."""

    name = "prune-channels"

    ratio: float = 0.25
    """Fraction of the channels of every prunable channel group to remove (0 <= r < 1)."""

    norm: str = "l1"
    """Channel score: ``l1`` (sum of |w|) or ``l2`` (Euclidean norm) of the filter."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise InvalidOptionError(f"{self.name}: ratio must be in [0, 1), got {self.ratio}")
        if self.norm not in ("l1", "l2"):
            raise InvalidOptionError(f"{self.name}: norm must be l1 or l2, got '{self.norm}'")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        an = _analyse(op)
        keep = _decide(an, self.ratio, self.norm)
        if keep:
            _Rewrite(an, keep, tally).run(op)
        elif not tally.done:
            tally.decline(main_func(op), "no prunable channel group (or ratio too small)")
        tally.record()
