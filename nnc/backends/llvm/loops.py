"""Small helpers for emitting loops and common arithmetic with ``llvmlite.ir``.

Every loop emitted here has a canonical shape (preheader, header with a phi, body,
latch, exit) so LLVM's loop vectorizer and unroller recognise it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from llvmlite import ir

F32 = ir.FloatType()
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32_PTR = F32.as_pointer()
I8_PTR = I8.as_pointer()
VOID = ir.VoidType()


def i64(value: int) -> ir.Constant:
    """An i64 constant."""
    return ir.Constant(I64, int(value))


def f32(value: float) -> ir.Constant:
    """An f32 constant."""
    return ir.Constant(F32, float(value))


@contextlib.contextmanager
def for_range(
    builder: ir.IRBuilder,
    start: ir.Value | int,
    stop: ir.Value | int,
    step: int = 1,
    name: str = "i",
) -> Iterator[ir.Value]:
    """Emit ``for (i = start; i < stop; i += step)`` over i64; yields the induction value.

    The body is emitted by the ``with`` block at the builder's position; on exit the
    builder is positioned after the loop. ``step`` must be positive. An empty range
    runs zero iterations.
    """
    start = i64(start) if isinstance(start, int) else start
    stop = i64(stop) if isinstance(stop, int) else stop
    pre = builder.block
    fn = builder.function
    header = fn.append_basic_block(f"{name}.header")
    body = fn.append_basic_block(f"{name}.body")
    exit_ = fn.append_basic_block(f"{name}.exit")
    builder.branch(header)
    builder.position_at_end(header)
    idx = builder.phi(I64, name=name)
    idx.add_incoming(start, pre)
    cond = builder.icmp_signed("<", idx, stop)
    builder.cbranch(cond, body, exit_)
    builder.position_at_end(body)
    yield idx
    nxt = builder.add(idx, i64(step), name=f"{name}.next", flags=["nsw"])
    idx.add_incoming(nxt, builder.block)
    builder.branch(header)
    builder.position_at_end(exit_)


def new_function(
    module: ir.Module, name: str, n_args: int, scratch: bool = False
) -> tuple[ir.Function, ir.IRBuilder, list[ir.Argument]]:
    """Declare ``void name(float*, ... [, i8* scratch])`` with ``noalias`` pointer args.

    Returns the function, a builder positioned in its entry block, and its arguments.
    The caller must end the function with ``builder.ret_void()``.
    """
    arg_types = [F32_PTR] * n_args + ([I8_PTR] if scratch else [])
    fn = ir.Function(module, ir.FunctionType(VOID, arg_types), name=name)
    for arg in fn.args:
        arg.add_attribute("noalias")
    fn.attributes.add("nounwind")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    return fn, builder, list(fn.args)


def gep(builder: ir.IRBuilder, ptr: ir.Value, index: ir.Value | int) -> ir.Value:
    """``&ptr[index]`` with an i64 index (inbounds)."""
    index = i64(index) if isinstance(index, int) else index
    return builder.gep(ptr, [index], inbounds=True)


def load_at(builder: ir.IRBuilder, ptr: ir.Value, index: ir.Value | int) -> ir.Value:
    """``ptr[index]``."""
    return builder.load(gep(builder, ptr, index))


def store_at(builder: ir.IRBuilder, value: ir.Value, ptr: ir.Value, index: ir.Value | int) -> None:
    """``ptr[index] = value``."""
    builder.store(value, gep(builder, ptr, index))


def full_or_tail(
    builder: ir.IRBuilder, idx: ir.Value, n_full: int, size: int, tail: int,
    emit: Callable[[int], None],
) -> None:  # fmt: skip
    """Emit ``emit(size)`` for block ``idx < n_full`` and ``emit(tail)`` for the last,
    partial block (``tail`` items; 0: there is none), each with its compile-time size;
    no branch when only one kind of block exists."""
    if not tail:
        emit(size)
    elif not n_full:
        emit(tail)
    else:
        with builder.if_else(builder.icmp_unsigned("<", idx, i64(n_full))) as (full, last):
            with full:
                emit(size)
            with last:
                emit(tail)


def intrinsic(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    """Get or declare an LLVM intrinsic or libm function (``llvm.exp.f32``, ``erff``...)."""
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, args), name=name)
