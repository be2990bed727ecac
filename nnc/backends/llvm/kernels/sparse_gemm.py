"""CSR sparse gemm / 1x1 conv kernel (``nn.sparse_gemm``).

Signature: ``void name(float* x, float* values, [float* bias], [float* residual],
float* out)``. The CSR structure (``row_ptr``, ``col_idx``, int32) is baked into the
kernel as two internal constant globals (the model stores nnz floats + N + 1 + nnz
int32 instead of N*K floats); the values are the weight buffer.

* ``layout="gemm"`` (x (M, K), out (M, N)): per output element, a sparse dot product
  ``sum_j values[j] * x[m, col_idx[j]]`` over the row's non-zeros (a gather from x),
  unrolled by 4 into independent accumulators.
* ``layout="conv1x1"`` (x (B, K, P) with P = H*W): per output row ``n``,
  ``out[b, n, :] = bias[n] + sum_j values[j] * x[b, col_idx[j], :]``: each non-zero
  is one ``axpy`` over P contiguous pixels (vectorized by LLVM), then the epilogue
  (``+ residual``, activation) runs over the row.

Work is proportional to nnz, not N*K, so it beats the dense kernels only at high
sparsity; ``sparse-kernels`` decides where (its cost rule).
"""

from __future__ import annotations

import math

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.loops import F32, I8, I32, I64, f32, for_range, gep, i64, load_at, store_at


def _index_global(module: ir.Module, name: str, data: bytes) -> ir.Value:
    """An internal constant i32 array holding ``data`` (little-endian int32), as i32*."""
    arr = ir.ArrayType(I8, max(len(data), 4))
    g = ir.GlobalVariable(module, arr, name=name)
    g.global_constant = True
    g.linkage = "internal"
    g.align = 64
    g.initializer = ir.Constant(arr, bytearray(data or b"\0\0\0\0"))
    return g


def _i32_at(b: ir.IRBuilder, g: ir.Value, index: ir.Value) -> ir.Value:
    ptr = b.bitcast(g, I32.as_pointer())
    return b.sext(b.load(b.gep(ptr, [index], inbounds=True)), I64)


def emit_sparse_gemm(
    module: ir.Module,
    name: str,
    *,
    layout: str,
    x_shape: tuple[int, ...],
    n: int,
    k: int,
    row_ptr: bytes,
    col_idx: bytes,
    has_bias: bool,
    has_residual: bool,
    activation: str,
    act_alpha: float,
    act_beta: float,
) -> KernelFn:
    """Emit the CSR kernel described in the module docstring."""
    if layout not in ("gemm", "conv1x1"):
        raise ValueError(f"unknown layout {layout!r}")
    if layout == "gemm" and has_residual:
        raise ValueError("gemm layout has no residual operand")
    n_args = 3 + int(has_bias) + int(has_residual)
    fn, b, args = loops.new_function(module, name, n_args)
    x, values = args[0], args[1]
    rest = iter(args[2:])
    bias = next(rest) if has_bias else None
    residual = next(rest) if has_residual else None
    out = next(rest)
    rp = _index_global(module, f"{name}.row_ptr", row_ptr)
    ci = _index_global(module, f"{name}.col_idx", col_idx)
    fma = loops.intrinsic(module, "llvm.fmuladd.f32", F32, [F32, F32, F32])

    def epilogue(v: ir.Value, r: ir.Value, res_index: ir.Value | None) -> ir.Value:
        if residual is not None and res_index is not None:
            v = b.fadd(v, load_at(b, residual, res_index))
        return emit_activation(b, module, v, activation, act_alpha, act_beta)

    if layout == "gemm":
        m = x_shape[0]
        accs = [b.alloca(F32) for _ in range(4)]  # 4 independent chains hide FMA latency

        def step(acc: ir.Value, j: ir.Value, xrow: ir.Value) -> None:
            xv = load_at(b, x, b.add(xrow, _i32_at(b, ci, j)))
            b.store(b.call(fma, [load_at(b, values, j), xv, b.load(acc)]), acc)

        with for_range(b, 0, m, name="m") as mi:
            with for_range(b, 0, n, name="r") as r:
                start = _i32_at(b, rp, r)
                stop = _i32_at(b, rp, b.add(r, i64(1)))
                for acc in accs:
                    b.store(f32(0.0), acc)
                xrow = b.mul(mi, i64(k))
                main_stop = b.sub(stop, b.and_(b.sub(stop, start), i64(3)))
                with for_range(b, start, main_stop, step=4, name="j4") as j:
                    for u, acc in enumerate(accs):
                        step(acc, b.add(j, i64(u)), xrow)
                with for_range(b, main_stop, stop, name="j") as j:
                    step(accs[0], j, xrow)
                loads = [b.load(acc) for acc in accs]
                total = b.fadd(b.fadd(loads[0], loads[1]), b.fadd(loads[2], loads[3]))
                if bias is not None:
                    total = b.fadd(total, load_at(b, bias, r))
                v = epilogue(total, r, None)
                store_at(b, v, out, b.add(b.mul(mi, i64(n)), r))
    else:
        batch, p = x_shape[0], math.prod(x_shape[2:])
        with for_range(b, 0, batch, name="b") as bi:
            with for_range(b, 0, n, name="r") as r:
                obase = b.mul(b.add(b.mul(bi, i64(n)), r), i64(p))
                yrow = gep(b, out, obase)
                init = load_at(b, bias, r) if bias is not None else f32(0.0)
                with for_range(b, 0, p, name="p0") as pi:
                    store_at(b, init, yrow, pi)
                start = _i32_at(b, rp, r)
                stop = _i32_at(b, rp, b.add(r, i64(1)))
                with for_range(b, start, stop, name="j") as j:
                    col = _i32_at(b, ci, j)
                    v = load_at(b, values, j)
                    xrow = gep(b, x, b.mul(b.add(b.mul(bi, i64(k)), col), i64(p)))
                    with for_range(b, 0, p, name="p") as pi:
                        acc = b.call(fma, [v, load_at(b, xrow, pi), load_at(b, yrow, pi)])
                        store_at(b, acc, yrow, pi)
                if residual is not None or activation != "none":
                    with for_range(b, 0, p, name="p1") as pi:
                        val = epilogue(load_at(b, yrow, pi), r, b.add(obase, pi))
                        store_at(b, val, yrow, pi)
    b.ret_void()
    return KernelFn(fn)
