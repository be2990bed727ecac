"""Max pooling on i8/u8 tensors (quantized models): ``out = max over the window's in-bounds
elements``, exactly the float max pool on the dequantized values, since per-tensor
dequantization is monotone (``fold-qdq`` moves max pools onto the integers). Padding
never wins (it is -inf in the float op); a window with no in-bounds element gives qmin.
Args: ``x, out`` (passed as ``float*``, bitcast to i8).
"""

from __future__ import annotations

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.loops import i64
from nnc.ir.nn_base import TensorSpec
from nnc.ir.ops_compute import MaxPoolOp

I8 = ir.IntType(8)


def emit_qmax_pool2d(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    kernel,
    strides,
    pads,
    dilations,
    ceil_mode: bool,
    dtype: str,
) -> KernelFn:
    """Integer NCHW max pool (see module docstring)."""
    props = dict(kernel=kernel, strides=strides, pads=pads, dilations=dilations,
                 ceil_mode=int(ceil_mode))  # fmt: skip
    _, _, oh, ow = MaxPoolOp.infer([TensorSpec(tuple(x_shape))], props)[0].shape
    n, c, h, w = x_shape
    fn, b, (x, y) = loops.new_function(module, name, 2)
    src, out = b.bitcast(x, I8.as_pointer()), b.bitcast(y, I8.as_pointer())
    signed = dtype == "i8"
    qmin = ir.Constant(I8, -128 if signed else 0)
    cmp = b.icmp_signed if signed else b.icmp_unsigned
    with loops.for_range(b, 0, n * c, name="nc") as plane:
        xin = loops.gep(b, src, b.mul(plane, i64(h * w)))
        yout = loops.gep(b, out, b.mul(plane, i64(oh * ow)))
        for i in range(oh):
            for j in range(ow):
                best = qmin
                for u in range(kernel[0]):
                    for v in range(kernel[1]):
                        yy = i * strides[0] - pads[0] + u * dilations[0]
                        xx = j * strides[1] - pads[1] + v * dilations[1]
                        if 0 <= yy < h and 0 <= xx < w:
                            val = loops.load_at(b, xin, yy * w + xx)
                            best = b.select(cmp(">", val, best), val, best)
                loops.store_at(b, best, yout, i * ow + j)
    b.ret_void()
    return KernelFn(fn)
