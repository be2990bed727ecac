"""Dynamically quantized Gemm / conv on the int8 micro-kernels (``nn.wq_gemm`` /
``nn.wq_conv`` with ``act_quant = "dynamic"`` and constant weights).

Per run: ``dyn_quant.emit_qparams`` (vectorized min/max) gives the activation scale ``s``
and zero point ``zp``; ``emit_quantize_rows`` quantizes ``x`` straight into the layout the
int8 kernel reads (Gemm: rows padded to the ISA's k group, in its activation domain;
conv: u8 planes, then ``qconv``'s zero-point padding and im2col). The run-time
parameters go into the scratch arrays the micro-kernel epilogue reads per channel::

    bias_i32[n] = -zp' * rowsum(w[n])         (zp' = zp in the ISA's domain, qisa.py)
    mult[n]     = s * scale[n]                 (f32, one rounding)

so the ``f32`` epilogue of ``requant.py`` computes ``f32(acc) * (s * scale[n]) + bias[n]``
with ``acc = sum_k (x_q - zp) * w[n, k]`` exact in int32 -- the contract of
``nnc/ir/ops_quant.py``, bit for bit. relu/clip fuse into the epilogue; a residual (or
another activation) is a float pass afterwards, in the contract's order. Weights (s8,
packed for the ISA), their row sums, scales and the float bias are globals of the
kernel, as for ``qgemm``/``qconv``. Args: ``x, [residual], out, scratch``.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.dyn_quant import emit_qparams, emit_quantize_rows
from nnc.backends.llvm.kernels.qconv import _emit_im2col, _emit_pad_planes
from nnc.backends.llvm.kernels.qgemm import QMicroCache, QTiling, RowHooks, emit_tiles
from nnc.backends.llvm.kernels.qisa import module_target, select_qisa
from nnc.backends.llvm.kernels.qpack import (
    ActDomain,
    as_array,
    ceil_to,
    const_global,
    null,
    pack_panel,
    pad_rows,
)
from nnc.backends.llvm.kernels.requant import Epilogue
from nnc.backends.llvm.loops import F32, I8, I32, for_range, gep, i64

I8_PTR = I8.as_pointer()
F32P = F32.as_pointer()
I32P = I32.as_pointer()
FUSED_ACTS = ("none", "relu", "clip")


def _epilogue(activation, act_alpha, act_beta, has_bias: bool, has_residual: bool) -> Epilogue:
    """The f32 epilogue; the activation fuses only without a residual (contract order)."""
    act = activation if not has_residual and activation in FUSED_ACTS else "none"
    lo, hi = {"none": (None, None), "relu": (0.0, None)}.get(act, (act_alpha, act_beta))
    return Epilogue("f32", f_lo=lo, f_hi=hi, f_bias=has_bias)


def _post(b, module, out, res, size: int, activation, act_alpha, act_beta, has_residual):
    """``out = act(out + residual)`` when the epilogue could not do it."""
    if not has_residual and activation in FUSED_ACTS:
        return
    _post_range(b, module, out, res, i64(0), i64(size), activation, act_alpha, act_beta)


def _post_range(b, module, out, res, start, stop, activation, act_alpha, act_beta) -> None:
    """``out[i] = act(out[i] + res[i])`` (``res`` None: no residual) for i in [start, stop):
    a flat loop LLVM vectorizes."""
    with for_range(b, start, stop, name="post") as i:
        v = loops.load_at(b, out, i)
        if res is not None:
            v = b.fadd(v, loops.load_at(b, res, i))
        loops.store_at(b, emit_activation(b, module, v, activation, act_alpha, act_beta), out, i)


def _post_hooks(module, res, n: int, activation, act_alpha, act_beta) -> RowHooks | None:
    """The ``_post`` pass of the GEMM as a ``RowHooks.after``: each task applies it to its
    own output rows right after computing them (cache hot, in parallel, no extra pass);
    None when the epilogue fuses everything."""
    if res is None and activation in FUSED_ACTS:
        return None

    def after(bb, r0, r1, ptrs, extra) -> None:
        out = bb.bitcast(ptrs[6], F32P)
        rv = bb.bitcast(extra[0], F32P) if res is not None else None
        start, stop = bb.mul(r0, i64(n)), bb.mul(r1, i64(n))
        _post_range(bb, module, out, rv, start, stop, activation, act_alpha, act_beta)

    return RowHooks(captures=(res,) if res is not None else (), after=after)


def _runtime_params(b, s, zp_dom, rowsum, wscale, bias_i32, mult, count: int) -> None:
    """``bias_i32[n] = -zp' * rowsum[n]``, ``mult[n] = s * scale[n]`` for ``n < count``."""
    neg = b.sub(ir.Constant(I32, 0), zp_dom)
    with for_range(b, 0, count, name="rp") as n:
        loops.store_at(b, b.mul(neg, loops.load_at(b, rowsum, n)), bias_i32, n)
        loops.store_at(b, b.fmul(s, loops.load_at(b, wscale, n)), mult, n)


def _padded(arr: np.ndarray, n: int, dtype) -> np.ndarray:
    out = np.zeros(max(n, arr.size, 1), dtype)
    out[: arr.size] = arr.reshape(-1)
    return out


def _globals(b, module, name, w2d: np.ndarray, scale, bias, count: int):
    """(rowsum i32*, scale f32*, fbias f32* or null) globals padded to ``count``."""
    rs = _padded(w2d.astype(np.int64).sum(axis=1).astype(np.int32), count, np.int32)
    ws = _padded(np.asarray(scale, np.float32), count, np.float32)
    rowsum = b.bitcast(const_global(module, f"{name}.rowsum", rs), I32P)
    wscale = b.bitcast(const_global(module, f"{name}.wscale", ws), F32P)
    fbias = null(F32P)
    if bias is not None:
        fb = _padded(as_array(bias).astype(np.float32), count, np.float32)
        fbias = b.bitcast(const_global(module, f"{name}.fbias", fb), F32P)
    return rowsum, wscale, fbias


def _zp_domain(b, zpf, dom: ActDomain):
    """The zero point (i32) in the kernel's activation domain (u8 input)."""
    zp = b.fptosi(zpf, I32)
    return b.sub(zp, ir.Constant(I32, 128)) if dom.flip else zp


def emit_dyn_gemm(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    w,
    scale,
    bias=None,
    has_residual: bool = False,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
) -> KernelFn:
    """Dynamic ``y = act(x @ w^T * (s * scale) + bias + residual)``; ``w (N, K)`` s8."""
    isa = select_qisa(module_target(module))
    wq = as_array(w).astype(np.int8)
    n, k = wq.shape
    m = int(math.prod(x_shape[:-1]))
    dom = ActDomain.of(isa, "u8", 0)
    g = isa.group
    kp, np_ = ceil_to(max(k, 1), g), ceil_to(max(n, 1), isa.nr)
    xq_bytes = ceil_to(m * kp, 64)
    scratch = xq_bytes + 8 * np_
    fn, b, args = loops.new_function(module, name, 2 + has_residual, scratch=True)
    x, out, scr = args[0], args[1 + has_residual], args[-1]
    res = args[1] if has_residual else None
    s, zpf = emit_qparams(b, module, x, m * k)
    emit_quantize_rows(b, module, x, s, zpf, m, k, scr, kp, dom.flip)
    bias_i32 = b.bitcast(gep(b, scr, xq_bytes), I32P)
    mult = b.bitcast(gep(b, scr, xq_bytes + 4 * np_), F32P)
    rowsum, wscale, fbias = _globals(b, module, name, wq, scale, bias, np_)
    _runtime_params(b, s, _zp_domain(b, zpf, dom), rowsum, wscale, bias_i32, mult, np_)
    panel = b.bitcast(const_global(module, f"{name}.wpack", pack_panel(wq.T, g, np_)), I8_PTR)
    epi = _epilogue(activation, act_alpha, act_beta, bias is not None, has_residual)
    tiling = QTiling(m, n, kp // g, kp, np_ * g, n, True, dom.signed, False, epi)
    hooks = _post_hooks(module, res, n, activation, act_alpha, act_beta)
    if m and n:
        emit_tiles(b, QMicroCache(module, name), isa, tiling, scr, panel, bias_i32, mult, fbias,
                   null(I8_PTR), b.bitcast(out, I8_PTR), hooks)  # fmt: skip
    b.ret_void()
    return KernelFn(fn, scratch)


def emit_dyn_conv(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    w,
    w_shape,
    scale,
    bias=None,
    has_residual: bool = False,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    group: int = 1,
) -> KernelFn:
    """Dynamic NCHW conv (not depthwise) on ``qconv``'s im2col + int8 tiles; ``w`` is the
    stored ``(M, C/group*KH*KW)`` s8 operand, ``w_shape`` its logical shape."""
    isa = select_qisa(module_target(module))
    wq = as_array(w).astype(np.int8).reshape(tuple(w_shape))
    shape = ConvShape.checked(x_shape, wq.shape, strides, pads, dilations, group)
    nimg, c, h, wd = x_shape
    m, cg, kh, kw = wq.shape
    pt, pl, pb, pr = pads
    oh, ow = shape.oh, shape.ow
    g, mg, kg, p = isa.group, m // group, cg * kh * kw, oh * ow
    kgp, pp = ceil_to(kg, g), ceil_to(p, isa.nr)
    dom = ActDomain.of(isa, "u8", 0)
    size = nimg * c * h * wd
    plane = (h + pt + pb) * (wd + pl + pr)
    off_xq = 0
    off_panel = ceil_to(size, 64)
    off_pad = off_panel + ceil_to(kgp * pp, 64)
    off_par = off_pad + ceil_to(cg * plane, 64)
    scratch = off_par + 8 * m
    fn, b, args = loops.new_function(module, name, 2 + has_residual, scratch=True)
    x, out, scr = args[0], args[1 + has_residual], args[-1]
    res = args[1] if has_residual else None
    s, zpf = emit_qparams(b, module, x, size)
    xq = gep(b, scr, off_xq)
    emit_quantize_rows(b, module, x, s, zpf, 1, size, xq, size)
    w2d = wq.reshape(m, kg)
    bias_i32 = b.bitcast(gep(b, scr, off_par), I32P)
    mult = b.bitcast(gep(b, scr, off_par + 4 * m), F32P)
    rowsum, wscale, fbias = _globals(b, module, name, w2d, scale, bias, m)
    zp_dom = _zp_domain(b, zpf, dom)
    _runtime_params(b, s, zp_dom, rowsum, wscale, bias_i32, mult, m)
    fill = b.trunc(zp_dom, I8)
    wrows = b.bitcast(const_global(module, f"{name}.wpack", pad_rows(w2d, kgp)), I8_PTR)
    epi = _epilogue(activation, act_alpha, act_beta, bias is not None, has_residual)
    tiling = QTiling(mg, p, kgp // g, kgp, pp * g, p, False, dom.signed, True, epi)
    geo = dict(hp=h + pt + pb, wp=wd + pl + pr, oh=oh, ow=ow, pp=pp, kh=kh, kw=kw, kg=kg,
               strides=tuple(strides), dil=tuple(dilations))  # fmt: skip
    panel, padded = gep(b, scr, off_panel), gep(b, scr, off_pad)
    out8 = b.bitcast(out, I8_PTR)
    cache = QMicroCache(module, name)
    with for_range(b, 0, nimg, name="img") as img, for_range(b, 0, group, name="grp") as gi:
        x_grp = gep(b, xq, b.mul(b.add(b.mul(img, i64(group)), gi), i64(cg * h * wd)))
        _emit_pad_planes(b, x_grp, padded, cg, h, wd, (pt, pl, pb, pr), fill, dom.flip)
        _emit_im2col(b, geo, g, padded, panel)
        ch0 = b.mul(gi, i64(mg))
        pos = b.mul(b.add(b.mul(img, i64(m)), ch0), i64(p))
        fb = fbias if isinstance(fbias, ir.Constant) else gep(b, fbias, ch0)
        emit_tiles(b, cache, isa, tiling, gep(b, wrows, b.mul(ch0, i64(kgp))), panel,
                   gep(b, bias_i32, ch0), gep(b, mult, ch0), fb, null(I8_PTR),
                   gep(b, out8, b.mul(pos, i64(4))))  # fmt: skip
    _post(b, module, out, res, nimg * m * p, activation, act_alpha, act_beta, has_residual)
    b.ret_void()
    return KernelFn(fn, scratch)
