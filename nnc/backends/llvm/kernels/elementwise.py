"""Elementwise kernels (unary activations, broadcasting binary ops) and strided-loop helpers.

The helpers ``row_major_strides``, ``coalesce`` and ``strided_nest`` are shared by the
other data-parallel kernels (normalization, reduce, data movement).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation, fmax, fmin
from nnc.backends.llvm.loops import F32, i64
from nnc.backends.llvm.parallel import parallel_blocks, parallel_for

#: Elements per task of a parallel flat loop.
FLAT_BLOCK = 4096
#: Unary kinds costing about one flop per element (others are transcendental).
CHEAP_UNARY = frozenset(
    {"none", "relu", "leaky_relu", "clip", "hard_sigmoid", "hard_swish", "abs", "neg"}
)

Shape = tuple[int, ...]


def row_major_strides(shape: Sequence[int]) -> Shape:
    """Element strides of a dense row-major array of ``shape``."""
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    return tuple(strides)


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> Shape:
    """Strides for reading an operand of ``shape`` broadcast (numpy rules) to ``out_shape``.

    Broadcast (size-1 or missing leading) dimensions get stride 0.
    """
    pad = len(out_shape) - len(shape)
    if pad < 0:
        raise ValueError(f"cannot broadcast {shape} to {out_shape}")
    full = (1,) * pad + tuple(shape)
    own = row_major_strides(full)
    strides = []
    for d, (n, m) in enumerate(zip(full, out_shape, strict=True)):
        if n not in (1, m):
            raise ValueError(f"cannot broadcast {shape} to {out_shape}")
        strides.append(0 if n == 1 else own[d])
    return tuple(strides)


def coalesce(dims: Sequence[int], strides: Sequence[Sequence[int]]) -> tuple[Shape, list[Shape]]:
    """Drop size-1 dims and merge adjacent dims that every operand walks as one.

    ``strides[k][d]`` is operand k's stride along dim d. Dims d, d+1 merge when for every
    operand ``strides[k][d] == strides[k][d+1] * dims[d+1]``. Returns the reduced dims and
    per-operand strides (same iteration order and addresses as the input nest). A
    zero-size nest is returned unchanged except for size-1 dims.
    """
    keep = [d for d, n in enumerate(dims) if n != 1]
    out_dims: list[int] = []
    out_strides: list[list[int]] = [[] for _ in strides]
    for d in keep:
        n = dims[d]
        if out_dims and all(st[-1] == s[d] * n for st, s in zip(out_strides, strides, strict=True)):
            out_dims[-1] *= n
            for st, s in zip(out_strides, strides, strict=True):
                st[-1] = s[d]
            continue
        out_dims.append(n)
        for st, s in zip(out_strides, strides, strict=True):
            st.append(s[d])
    return tuple(out_dims), [tuple(st) for st in out_strides]


def offset_step(b: ir.IRBuilder, base: ir.Value, idx: ir.Value, stride: int) -> ir.Value:
    """``base + idx * stride`` (folded when ``stride`` is 0 or 1)."""
    if stride == 0:
        return base
    term = idx if stride == 1 else b.mul(idx, i64(stride), flags=["nsw"])
    return b.add(base, term, flags=["nsw"])


@contextlib.contextmanager
def strided_nest(
    b: ir.IRBuilder,
    dims: Sequence[int],
    strides: Sequence[Sequence[int]],
    bases: Sequence[ir.Value | int],
    name: str = "d",
) -> Iterator[list[ir.Value]]:
    """Nested loops over ``dims`` (outermost first); yields each operand's element offset.

    Operand k's offset is ``bases[k] + sum_d idx_d * strides[k][d]``, computed
    incrementally so each level's arithmetic is hoisted out of the inner loops.
    """
    offs = [i64(x) if isinstance(x, int) else x for x in bases]
    with contextlib.ExitStack() as stack:
        for d, n in enumerate(dims):
            idx = stack.enter_context(loops.for_range(b, 0, n, name=f"{name}{d}"))
            offs = [offset_step(b, o, idx, st[d]) for o, st in zip(offs, strides, strict=True)]
        yield offs


REDUCE_FLAGS = ("reassoc", "contract", "nsz")


def reassoc(instr: ir.Instruction) -> ir.Instruction:
    """Mark a float add/mul as reassociable so LLVM vectorizes the reduction it feeds."""
    instr.flags.extend(REDUCE_FLAGS)
    return instr


def entry_alloca(b: ir.IRBuilder, name: str) -> ir.Value:
    """An f32 stack slot in the entry block (promoted to a register phi by SROA)."""
    with b.goto_entry_block():
        return b.alloca(F32, name=name)


def accumulate(
    b: ir.IRBuilder,
    n: int | ir.Value,
    init: ir.Value,
    combine: Callable[[ir.Value, ir.Value], ir.Value],
    term: Callable[[ir.Value], ir.Value],
    name: str = "acc",
) -> ir.Value:
    """Fold ``acc = combine(acc, term(i))`` for i in [0, n) starting from ``init``.

    The accumulator lives in an entry-block alloca (SROA turns it into a phi); mark
    ``combine`` reassociable (``reassoc``) so the loop vectorizes.
    """
    slot = entry_alloca(b, name)
    b.store(init, slot)
    with loops.for_range(b, 0, n, name=f"{name}.i") as i:
        b.store(combine(b.load(slot), term(i)), slot)
    return b.load(slot)


def emit_unary(
    module: ir.Module, name: str, *, shape: Shape, kind: str, alpha: float = 0.0, beta: float = 0.0
) -> KernelFn:
    """``out = kind(x)`` elementwise over ``shape`` (any activation in ``ACTIVATIONS``).

    Args: x, out (both ``shape``). One flat contiguous loop (blocks of it in parallel).
    """
    fn, b, (x, out) = loops.new_function(module, name, 2)

    def body(b: ir.IRBuilder, start, stop, args) -> None:
        px, pout = args
        with loops.for_range(b, start, stop) as i:
            y = emit_activation(b, module, loops.load_at(b, px, i), kind, alpha, beta)
            loops.store_at(b, y, pout, i)

    size = math.prod(shape)
    cost = 8 if kind in CHEAP_UNARY else 32  # bytes moved / ~flops per element
    parallel_blocks(b, size, FLAT_BLOCK, [x, out], body, work=size * cost)
    b.ret_void()
    return KernelFn(fn)


BinOp = Callable[[ir.IRBuilder, ir.Module, ir.Value, ir.Value], ir.Value]

BINARY_OPS: dict[str, BinOp] = {
    "add": lambda b, m, x, y: b.fadd(x, y),
    "sub": lambda b, m, x, y: b.fsub(x, y),
    "mul": lambda b, m, x, y: b.fmul(x, y),
    "div": lambda b, m, x, y: b.fdiv(x, y),
    "pow": lambda b, m, x, y: b.call(loops.intrinsic(m, "llvm.pow.f32", F32, [F32, F32]), [x, y]),
    "max": lambda b, m, x, y: fmax(b, m, x, y),
    "min": lambda b, m, x, y: fmin(b, m, x, y),
}


def _load_operand(
    b: ir.IRBuilder, ptr: ir.Value, base: ir.Value, idx: ir.Value, stride: int
) -> ir.Value:
    """Load ``ptr[base + idx*stride]`` in the inner loop (stride 0 or 1 after coalescing)."""
    return loops.load_at(b, ptr, offset_step(b, base, idx, stride))


def emit_binary(
    module: ir.Module, name: str, *, a_shape: Shape, b_shape: Shape, out_shape: Shape, kind: str
) -> KernelFn:
    """``out = a <kind> b`` with numpy broadcasting; kind in ``BINARY_OPS``.

    Args: a, b, out (``out_shape`` must equal the broadcast shape). Dims are coalesced, so
    same-shape operands become one flat loop, a per-channel operand becomes an inner
    contiguous loop over a hoisted scalar, and a scalar operand is loaded once.
    """
    op = BINARY_OPS[kind]
    fn, b, (pa, pb, pout) = loops.new_function(module, name, 3)
    strides = [
        broadcast_strides(a_shape, out_shape),
        broadcast_strides(b_shape, out_shape),
        row_major_strides(out_shape),
    ]
    dims, strides = coalesce(out_shape, strides)
    if math.prod(out_shape) == 0:
        b.ret_void()
        return KernelFn(fn)
    if not dims:
        dims, strides = (1,), [(0,), (0,), (1,)]
    sa, sb, so = strides

    def inner(b: ir.IRBuilder, args, bases, lo=None, hi=None) -> None:
        pa, pb, pout = args
        oa, ob, oo = bases
        # Loop-invariant operands (inner stride 0) are loaded before the inner loop.
        va = loops.load_at(b, pa, oa) if sa[-1] == 0 else None
        vb = loops.load_at(b, pb, ob) if sb[-1] == 0 else None
        lo, hi = (0, dims[-1]) if lo is None else (lo, hi)
        with loops.for_range(b, lo, hi, name="j") as j:
            x = va if va is not None else _load_operand(b, pa, oa, j, sa[-1])
            y = vb if vb is not None else _load_operand(b, pb, ob, j, sb[-1])
            loops.store_at(b, op(b, module, x, y), pout, offset_step(b, oo, j, so[-1]))

    total = math.prod(out_shape)
    work = 12 * total  # bytes moved (parallel.MIN_PARALLEL_WORK)
    if len(dims) == 1:  # one flat loop: blocks of it in parallel

        def flat(b: ir.IRBuilder, start, stop, args) -> None:
            inner(b, args, [i64(0)] * 3, start, stop)

        parallel_blocks(b, dims[0], FLAT_BLOCK, [pa, pb, pout], flat, work=work)
    else:  # the outermost dim in parallel

        def rows(b: ir.IRBuilder, lo, hi, args) -> None:
            with loops.for_range(b, lo, hi, name="d0") as i0:
                bases = [offset_step(b, i64(0), i0, s[0]) for s in strides]
                with strided_nest(b, dims[1:-1], [s[1:-1] for s in strides], bases) as offs:
                    inner(b, args, offs)

        parallel_for(b, dims[0], [pa, pb, pout], rows, work=work)
    b.ret_void()
    return KernelFn(fn)
