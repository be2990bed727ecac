"""Numpy reference semantics of every nn op: the oracle all tests compare against.

``interpret(module, inputs)`` runs ``main`` op by op. ``evaluate_op(op, arrays)``
evaluates one op on numpy arrays (used by constant folding). Float32 in, float32 out;
accumulation happens in float64 where cheap, so the oracle is at least as accurate as
any kernel under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from nnc.ir import ops_compute as oc
from nnc.ir import ops_conv_algos as oca
from nnc.ir import ops_shape as osh
from nnc.ir.builder import io_names, main_func
from nnc.ir.nn_base import TensorSpec
from nnc.ir.ops_elementwise import BinaryOp, UnaryOp
from nnc.ir.types import DYNAMIC, numpy_dtype

_IMPLS: dict[type, Callable[..., np.ndarray]] = {}


def _impl(*op_types: type):
    def wrap(fn):
        for t in op_types:
            _IMPLS[t] = fn
        return fn

    return wrap


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def activation(x: np.ndarray, kind: str, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """Reference of every activation kind shared by unary ops and fused epilogues."""
    x64 = x.astype(np.float64)
    table: dict[str, Callable[[], np.ndarray]] = {
        "none": lambda: x64,
        "relu": lambda: np.maximum(x64, 0),
        "leaky_relu": lambda: np.where(x64 >= 0, x64, alpha * x64),
        "clip": lambda: np.minimum(np.maximum(x64, alpha), beta),
        "sigmoid": lambda: 1 / (1 + np.exp(-x64)),
        "tanh": lambda: np.tanh(x64),
        "hard_sigmoid": lambda: np.clip(alpha * x64 + beta, 0, 1),
        "hard_swish": lambda: x64 * np.clip(x64 / 6 + 0.5, 0, 1),
        "gelu": lambda: 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2))),
        "gelu_tanh": lambda: (
            0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
        ),
        "erf": lambda: _erf(x64),
        "exp": lambda: np.exp(x64),
        "log": lambda: np.log(x64),
        "sqrt": lambda: np.sqrt(x64),
        "neg": lambda: -x64,
        "abs": lambda: np.abs(x64),
        "reciprocal": lambda: 1 / x64,
        "elu": lambda: np.where(x64 > 0, x64, alpha * (np.exp(x64) - 1)),
        "softplus": lambda: np.logaddexp(0, x64),
    }
    with np.errstate(all="ignore"):
        return table[kind]().astype(x.dtype)


@_impl(*UnaryOp.__subclasses__())
def _unary(op: UnaryOp, x: np.ndarray) -> np.ndarray:
    return activation(x, op.KIND, *op.act_params())


_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
}


@_impl(*BinaryOp.__subclasses__())
def _binary(op: BinaryOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = _BINARY[op.KIND](a, b)
    return out.astype(a.dtype) if a.dtype.kind != "f" or out.dtype != a.dtype else out


@_impl(oc.ConstantOp)
def _constant(op: oc.ConstantOp) -> np.ndarray:
    return op.prop("value").array


def _epilogue(op: Operation, y: np.ndarray) -> np.ndarray:
    return activation(y, op.prop("activation"), op.prop("act_alpha"), op.prop("act_beta"))


def conv2d(x: np.ndarray, w: np.ndarray, strides, pads, dilations, group: int) -> np.ndarray:
    """Plain NCHW grouped convolution in float64 (no bias)."""
    n, c, _, _ = x.shape
    m, cg, kh, kw = w.shape
    t, left, b, r = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (left, r)))
    (sh, sw), (dh, dw) = strides, dilations
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, m, oh, ow))
    mg = m // group
    if group == 1:  # im2col per image: one BLAS product (float64, exact for integers)
        w2 = w.astype(np.float64).reshape(m, cg * kh * kw)
        for img in range(n):
            cols = np.stack(
                [
                    xp[img, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                       j * dw : j * dw + sw * (ow - 1) + 1 : sw]
                    for i in range(kh)
                    for j in range(kw)
                ],
                axis=1,
            )  # fmt: skip
            out[img] = (w2 @ cols.reshape(cg * kh * kw, oh * ow)).reshape(m, oh, ow)
        return out
    if cg == 1:  # depthwise-like: one broadcast product per tap over all groups
        wg = w.astype(np.float64).reshape(group, mg, kh, kw)
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                           j * dw : j * dw + sw * (ow - 1) + 1 : sw]  # fmt: skip
                tap = wg[:, :, i, j].reshape(1, group, mg, 1, 1)
                out += (patch[:, :, None] * tap).reshape(n, m, oh, ow)
        return out
    for g in range(group):
        xg = xp[:, g * cg : (g + 1) * cg]
        wg = w[g * mg : (g + 1) * mg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xg[
                    :,
                    :,
                    i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                    j * dw : j * dw + sw * (ow - 1) + 1 : sw,
                ]
                out[:, g * mg : (g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, wg[:, :, i, j])
    return out


@_impl(oc.ConvOp)
def _conv(op: oc.ConvOp, x, w, *extra) -> np.ndarray:
    y = conv2d(x, w, op.prop("strides"), op.prop("pads"), op.prop("dilations"), op.prop("group"))
    extras = iter(extra)
    if op.operand_named("bias") is not None:
        y += next(extras).astype(np.float64).reshape(1, -1, 1, 1)
    if op.operand_named("residual") is not None:
        y += next(extras)
    return _epilogue(op, y.astype(np.float32))


def _conv_epilogue(op: Operation, y: np.ndarray, extra) -> np.ndarray:
    """``act(y + bias + residual)`` for conv-like ops with optional bias/residual."""
    extras = iter(extra)
    if op.operand_named("bias") is not None:
        y = y + next(extras).astype(np.float64).reshape(1, -1, 1, 1)
    if op.operand_named("residual") is not None:
        y = y + next(extras)
    return _epilogue(op, y.astype(np.float32))


@_impl(oca.WinogradConvOp)
def _winograd_conv(op: oca.WinogradConvOp, x, u, *extra) -> np.ndarray:
    # The real algorithm (float64) on the stored transformed weights.
    y = oca.winograd_reference(x, u, op.prop("tile"), op.prop("pads"))
    return _conv_epilogue(op, y, extra)


@_impl(oca.FFTConvOp)
def _fft_conv(op: oca.FFTConvOp, x, wf, *extra) -> np.ndarray:
    y = oca.fft_reference(x, wf, op.prop("kernel"), op.prop("pads"), op.prop("fft_shape"))
    return _conv_epilogue(op, y, extra)


@_impl(oc.GemmOp)
def _gemm(op: oc.GemmOp, a, b, c=None) -> np.ndarray:
    a64 = a.astype(np.float64).T if op.prop("trans_a") else a.astype(np.float64)
    b64 = b.astype(np.float64).T if op.prop("trans_b") else b.astype(np.float64)
    y = op.prop("alpha") * (a64 @ b64)
    if c is not None:
        y = y + op.prop("beta") * c.astype(np.float64)
    return _epilogue(op, y.astype(np.float32))


@_impl(oc.MatMulOp)
def _matmul(op, a, b) -> np.ndarray:
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)


@_impl(oc.BatchNormOp)
def _batch_norm(op, x, scale, bias, mean, var) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + op.prop("epsilon"))
    y = (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)
    return y.astype(np.float32)


def _pool_out_shape(op, x: np.ndarray) -> tuple[int, ...]:
    """Output shape for the actual input (the result type may have dynamic dims)."""
    return type(op).infer([TensorSpec(tuple(x.shape))], op.props_dict())[0].shape


def _pool_windows(op, x: np.ndarray, fill: float):
    """Yield (oh, ow, window array over padded input, in-bounds mask) per output pixel."""
    (kh, kw), (sh, sw) = op.prop("kernel"), op.prop("strides")
    dh, dw = op.prop("dilations") if "dilations" in op.PROPS else (1, 1)
    t, left, b, r = op.prop("pads")
    _, _, oh, ow = _pool_out_shape(op, x)
    h, w = x.shape[2:]
    # Pad generously so ceil_mode overhang is addressable; mask tells what is real.
    extra_h, extra_w = sh * oh + dh * kh, sw * ow + dw * kw
    xp = np.pad(
        x.astype(np.float64), ((0, 0), (0, 0), (t, extra_h), (left, extra_w)), constant_values=fill
    )
    inside = np.zeros(xp.shape[2:], dtype=np.int8)  # 2 = real, 1 = explicit pad, 0 = overhang
    inside[: t + h + b, : left + w + r] = 1
    inside[t : t + h, left : left + w] = 2
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
            cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
            yield i, j, xp[:, :, rows, cols], inside[rows, cols]


@_impl(oc.MaxPoolOp)
def _max_pool(op, x) -> np.ndarray:
    out = np.empty(_pool_out_shape(op, x), x.dtype)  # i8/u8 too (quantized models)
    (kh, kw), (sh, sw) = op.prop("kernel"), op.prop("strides")
    dh, dw = op.prop("dilations")
    t, left, _, _ = op.prop("pads")
    oh, ow = out.shape[2:]
    # Padding and ceil_mode overhang never win: -inf around the input, one max per tap.
    extra_h, extra_w = sh * oh + dh * kh, sw * ow + dw * kw
    xp = np.pad(
        x.astype(np.float64), ((0, 0), (0, 0), (t, extra_h), (left, extra_w)),
        constant_values=-np.inf,
    )  # fmt: skip
    best = np.full(out.shape, -np.inf)
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                     j * dw : j * dw + sw * (ow - 1) + 1 : sw]  # fmt: skip
            np.maximum(best, tap, out=best)
    out[...] = best
    return out


@_impl(oc.AvgPoolOp)
def _avg_pool(op, x) -> np.ndarray:
    out = np.empty(_pool_out_shape(op, x), np.float32)
    include_pad = op.prop("count_include_pad")
    for i, j, win, inside in _pool_windows(op, x, 0.0):
        count = (inside >= 1).sum() if include_pad else (inside == 2).sum()
        out[:, :, i, j] = np.where(inside == 2, win, 0).sum(axis=(2, 3)) / count
    return out


@_impl(oc.GlobalAvgPoolOp)
def _global_avg(op, x) -> np.ndarray:
    axes = tuple(range(2, x.ndim))
    return x.astype(np.float64).mean(axis=axes, keepdims=True).astype(np.float32)


@_impl(oc.GlobalMaxPoolOp)
def _global_max(op, x) -> np.ndarray:
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


@_impl(oc.LRNOp)
def _lrn(op, x) -> np.ndarray:
    size, c = op.prop("size"), x.shape[1]
    sq = np.square(x.astype(np.float64))
    acc = np.zeros_like(sq)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    for ch in range(c):
        acc[:, ch] = sq[:, max(0, ch - lo) : min(c, ch + hi + 1)].sum(axis=1)
    denom = (op.prop("bias") + op.prop("alpha") / size * acc) ** op.prop("beta")
    return (x / denom).astype(np.float32)


@_impl(oc.LayerNormOp)
def _layer_norm(op, x, scale, bias=None) -> np.ndarray:
    axis = op.prop("axis") % x.ndim
    axes = tuple(range(axis, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + op.prop("epsilon")) * scale
    if bias is not None:
        y = y + bias
    return y.astype(np.float32)


@_impl(osh.ReshapeOp)
def _reshape(op, x) -> np.ndarray:
    return x.reshape(op.prop("shape"))


@_impl(osh.TransposeOp)
def _transpose(op, x) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, op.prop("perm")))


@_impl(osh.ConcatOp)
def _concat(op, *xs) -> np.ndarray:
    return np.concatenate(xs, axis=op.prop("axis"))


@_impl(osh.SliceOp)
def _slice(op, x) -> np.ndarray:
    ranges = osh.SliceOp.normalized(x.shape, op.props_dict())
    # an empty range may normalize to start -1, which numpy would read as "last element"
    index = tuple(
        slice(0, 0) if len(range(a, b, s)) == 0 else slice(a, None if (b < 0 and s < 0) else b, s)
        for a, b, s in ranges
    )
    return np.ascontiguousarray(x[index])


@_impl(osh.PadOp)
def _pad(op, x) -> np.ndarray:
    pads, rank = op.prop("pads"), x.ndim
    width = [(pads[i], pads[i + rank]) for i in range(rank)]
    mode = op.prop("mode")
    if mode == "constant":
        return np.pad(x, width, constant_values=op.prop("value"))
    return np.pad(x, width, mode="reflect" if mode == "reflect" else "edge")


def _softmax64(x: np.ndarray, axis: int) -> np.ndarray:
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@_impl(osh.SoftmaxOp)
def _softmax(op, x) -> np.ndarray:
    return _softmax64(x, op.prop("axis")).astype(np.float32)


@_impl(osh.LogSoftmaxOp)
def _log_softmax(op, x) -> np.ndarray:
    x64 = x.astype(np.float64)
    axis = op.prop("axis")
    shifted = x64 - x64.max(axis=axis, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))).astype(np.float32)


@_impl(osh.ReduceMeanOp, osh.ReduceSumOp, osh.ReduceMaxOp)
def _reduce(op, x) -> np.ndarray:
    fn = {"mean": np.mean, "sum": np.sum, "max": np.max}[op.KIND]
    axes = tuple(a % x.ndim for a in op.prop("axes"))
    src = x.astype(np.float64) if op.KIND != "max" else x
    return fn(src, axis=axes, keepdims=bool(op.prop("keepdims"))).astype(x.dtype)


def evaluate_op(op: Operation, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Evaluate one nn op on numpy arrays (operands in order); returns its results."""
    impl = _IMPLS.get(type(op))
    if impl is None:
        raise NotImplementedError(f"interpreter has no semantics for {op.name}")
    out = impl(op, *arrays)
    results = out if isinstance(out, list) else [out]
    for value, arr in zip(op.results, results):
        want = TensorSpec.of(value)
        shape_ok = len(arr.shape) == want.rank and all(
            w in (a, DYNAMIC) for a, w in zip(arr.shape, want.shape)
        )
        if not shape_ok or arr.dtype != numpy_dtype(want.dtype):
            raise AssertionError(
                f"{op.name}: interpreter produced {arr.dtype}{arr.shape}, type says {want}"
            )
    return results


def interpret(
    module: ModuleOp, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    """Run the model's ``main`` on ``inputs`` (list in order, or dict by input name)."""
    fn = main_func(module)
    block = fn.body.blocks[0]
    if isinstance(inputs, Mapping):
        names, _ = io_names(module)
        inputs = [inputs[n] for n in names]
    if len(inputs) != len(block.args):
        raise ValueError(f"model takes {len(block.args)} inputs, got {len(inputs)}")
    env: dict[SSAValue, np.ndarray] = {}
    for arg, arr in zip(block.args, inputs):
        env[arg] = np.asarray(arr)
    for op in block.ops:
        if isinstance(op, func.ReturnOp):
            return [env[v] for v in op.operands]
        for value, arr in zip(op.results, evaluate_op(op, [env[v] for v in op.operands])):
            env[value] = arr
    raise ValueError("main has no func.return")


# Quantized ops live in their own file; importing it registers them in _IMPLS.
from nnc.ir import interpret_blocked as _interpret_blocked  # noqa: E402, F401
from nnc.ir import interpret_codebook as _interpret_codebook  # noqa: E402, F401
from nnc.ir import interpret_quant as _interpret_quant  # noqa: E402, F401
from nnc.ir import interpret_sparse as _interpret_sparse  # noqa: E402, F401
