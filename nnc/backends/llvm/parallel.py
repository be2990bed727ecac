"""``parallel_for``: run a kernel's outermost loop on the library's thread pool.

    def body(b, lo, hi, args):          # emits the work of tasks [lo, hi)
        x, out = args
        with loops.for_range(b, lo, hi) as i:
            ...
    parallel_for(b, n_tasks, [x, out], body, work=flops)

The thread setting is a property of the ``ir.Module`` (``set_module_threads``; the code
generator sets it from ``--threads``). When the loop is too small to pay for a dispatch
(``work`` below ``MIN_PARALLEL_WORK``) or has one task, ``body`` is emitted inline over
``[0, n_tasks)``. With 1 thread (the default, e.g. in kernel unit tests) the body is
outlined exactly as below but called task by task from a plain loop: no threading code
at all, and the same per-task code as a threaded build, so a model gives the same bits
for every ``--threads`` value and thread count.

Otherwise ``body`` is outlined into ``void NAME.bodyK(captures..., i64 lo, i64 hi)``
(noinline; pointer captures keep ``noalias``, so the loop still vectorizes), a thunk
``void(i8* ctx, i64 lo, i64 hi)`` unpacks the captures from a stack struct and calls
the body once per task (``[t, t+1)``: the code of a task never depends on how the range
was cut, so results are the same for any thread count and when the pool is busy), and the
kernel calls ``nnc.parallel_for(thunk, ctx, n_tasks)`` (``threadpool.py``), which runs the
thunk on disjoint ranges covering ``[0, n_tasks)``. Tasks must be independent: they write
disjoint outputs, and any scratch they use is per-task (indexed by the task). The result
of every task must not depend on how the range is cut.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir

from nnc.backends.llvm.loops import I8_PTR, I64, VOID, for_range, i64
from nnc.backends.llvm.threadpool import BODY_TYPE, dispatcher

#: Loops doing less work than this stay serial: a dispatch costs a few us (more on a busy
#: machine). Work is counted in flops for compute kernels (2^19 ~ 5 us of vectorized
#: work) and in bytes moved for memory-bound ones (elementwise, copies: ~20 us).
MIN_PARALLEL_WORK = 1 << 19

_THREADS_ATTR = "_nnc_threads"

Body = Callable[[ir.IRBuilder, ir.Value, ir.Value, list[ir.Value]], None]


def set_module_threads(module: ir.Module, threads: int) -> None:
    """Kernels emitted into ``module`` from now on use ``threads`` (0 = all cores, 1 = none)."""
    setattr(module, _THREADS_ATTR, int(threads))


def module_threads(module: ir.Module) -> int:
    """The thread setting of ``module`` (1 unless ``set_module_threads`` was called)."""
    return getattr(module, _THREADS_ATTR, 1)


def uses_threads(module: ir.Module) -> bool:
    """True when some kernel of ``module`` calls the dispatcher."""
    from nnc.backends.llvm.threadpool import DISPATCH

    return DISPATCH in module.globals


def parallel_for(
    b: ir.IRBuilder,
    n_tasks: int,
    captures: Sequence[ir.Value],
    body: Body,
    *,
    work: int | None = None,
    name: str = "par",
) -> None:
    """Emit ``for task in [0, n_tasks): body`` split over the pool (see the module doc).

    ``captures`` are the values of the current function ``body`` uses (pointers or
    integers); ``body`` receives them as its ``args`` (the originals when inline, the
    outlined function's parameters otherwise) and must only use those plus constants.
    ``work`` estimates the whole loop's cost (about flops; default ``n_tasks`` * 2**16,
    i.e. always worth it).
    """
    module = b.module
    work = n_tasks << 16 if work is None else work
    if n_tasks <= 1 or work < MIN_PARALLEL_WORK:
        body(b, i64(0), i64(n_tasks), list(captures))
        return
    parent = b.function
    base = f"{parent.name}.{name}"
    k = sum(1 for g in module.globals if g.startswith(base + ".body"))
    types = [c.type for c in captures]
    # 1. The outlined body: captures as parameters (noalias pointers) + the task range.
    inner = ir.Function(module, ir.FunctionType(VOID, [*types, I64, I64]), f"{base}.body{k}")
    inner.linkage = "internal"
    inner.attributes.add("nounwind")
    inner.attributes.add("noinline")
    for arg in inner.args[: len(types)]:
        if isinstance(arg.type, ir.PointerType):
            arg.add_attribute("noalias")
    ib = ir.IRBuilder(inner.append_basic_block("entry"))
    body(ib, inner.args[-2], inner.args[-1], list(inner.args[: len(types)]))
    ib.ret_void()
    if module_threads(module) == 1:  # serial build: the same per-task calls, no pool
        with for_range(b, 0, n_tasks, name=f"{name}.task") as t:
            b.call(inner, [*captures, t, b.add(t, i64(1))])
        return
    # 2. The thunk the pool calls: unpack the context struct, call the body.
    ctx_type = ir.LiteralStructType(types)
    thunk = ir.Function(module, BODY_TYPE, f"{base}.thunk{k}")
    thunk.linkage = "internal"
    thunk.attributes.add("nounwind")
    tb = ir.IRBuilder(thunk.append_basic_block("entry"))
    ctx = tb.bitcast(thunk.args[0], ctx_type.as_pointer())
    zero = ir.Constant(ir.IntType(32), 0)
    values = [
        tb.load(tb.gep(ctx, [zero, ir.Constant(ir.IntType(32), j)])) for j in range(len(types))
    ]
    # One call per task: the code computing task t is the same whatever range it falls
    # in, so results do not depend on the thread count or on the pool being busy.
    with for_range(tb, thunk.args[1], thunk.args[2], name="task") as t:
        tb.call(inner, [*values, t, tb.add(t, i64(1))])
    tb.ret_void()
    # 3. At the call site: fill the context on the stack and dispatch.
    with b.goto_entry_block():
        slot = b.alloca(ctx_type, name=f"{name}.ctx")
    for j, value in enumerate(captures):
        b.store(value, b.gep(slot, [zero, ir.Constant(ir.IntType(32), j)]))
    b.call(dispatcher(module), [thunk, b.bitcast(slot, I8_PTR), i64(n_tasks)])


def parallel_blocks(
    b: ir.IRBuilder,
    total: int,
    block: int,
    captures: Sequence[ir.Value],
    body: Body,
    *,
    work: int | None = None,
    name: str = "par",
) -> None:
    """``parallel_for`` over ``[0, total)`` cut into tasks of ``block`` items.

    ``body(b, start, stop, args)`` receives item (not task) bounds. Inline (serial) it is
    called once with the constants ``0`` and ``total``. ``work`` defaults to ``total``.
    """
    work = total if work is None else work
    n_tasks = -(-total // block) if total > 0 else 0

    def blocks(bb: ir.IRBuilder, lo: ir.Value, hi: ir.Value, args: list[ir.Value]) -> None:
        if isinstance(lo, ir.Constant) and isinstance(hi, ir.Constant):
            body(bb, i64(0), i64(total), args)  # the whole range, inline
            return
        start = bb.mul(lo, i64(block))
        stop = bb.mul(hi, i64(block))
        stop = bb.select(bb.icmp_signed("<", stop, i64(total)), stop, i64(total))
        body(bb, start, stop, args)

    parallel_for(b, n_tasks, captures, blocks, work=work, name=name)
