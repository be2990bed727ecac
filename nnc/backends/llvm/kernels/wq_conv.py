"""Weight-only convolution (``nn.wq_conv``, ``act_quant = "none"``, ``group == 1``).

Compute-bound layers (``wq_cache.cache_algo``: Winograd by the float32 cost rule, or at
least ``wq_cache.CACHE_PIXELS`` output pixels) decode their weight once, on the first
run, and run the float32 kernel (``wq_cache.py``). The others, below, decode per tile.

The direct conv kernel (``conv_direct.py``) computes a tile of ``CH`` output channels
(``direct_tile(module).channels``: 32 on AVX-512, 16 elsewhere) from its ``c16`` packed
panel ``[CH/16][C*KH*KW][16]`` -- which is exactly ``CH/16`` consecutive blocks of the
``wq16`` layout (``wq_pack.py``) once decoded. So per channel tile this kernel decodes
those blocks (``wq_decode.decode_row``, vectorized, exact) into a per-task scratch panel
and calls a direct conv emitted for ``CH`` output channels (one more for the channel
tail) on it, image by image, with pointers offset to the tile's channels. The weights
are read once per run in their compressed size; the float panel is cache resident.
Tasks (``parallel_for``) are ranges of channel tiles, at most ``MAX_TASKS`` (one panel
each).

Small output planes (``OH*OW`` at most two register row blocks of ``wq_gemm``: the deep
layers of a CNN) instead run as a GEMM: per image the im2col matrix ``[OH*OW][K]`` is
built in scratch and multiplied by the weight with ``wq_gemm`` (pixels are its rows; few
rows decode in registers, so each weight is decoded once and never stored as float), then
a transposing epilogue adds bias and residual, applies the activation and writes NCHW.
There a separate decode pass would cost as much as the few multiply-adds per weight.

Args: ``x, w_wq16, [bias], [residual], out, scratch``. Same results as ``nn.conv`` with
the decoded weight (the float kernels' tolerance).
"""

from __future__ import annotations

import math

from llvmlite import ir

from nnc.backends.llvm import loops
from nnc.backends.llvm.kernels import KernelFn
from nnc.backends.llvm.kernels.activation import emit_activation
from nnc.backends.llvm.kernels.conv_direct import direct_tile, emit_conv2d_direct
from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.wq_cache import (
    cache_algo,
    decode_block,
    emit_wq_conv_cached,
    winograd_ok,
)
from nnc.backends.llvm.kernels.wq_decode import GroupParams
from nnc.backends.llvm.kernels.wq_gemm import WQTile, emit_wq_gemm, padded_ld
from nnc.backends.llvm.kernels.wq_pack import BLOCK, WQLayout
from nnc.backends.llvm.loops import F32, I8_PTR, f32, for_range, gep, i64, load_at, store_at
from nnc.backends.llvm.parallel import parallel_for

F32P = F32.as_pointer()
MAX_TASKS = 16
#: Output planes up to this many pixels run as im2col + ``wq_gemm`` (None: when the plane
#: fits two register row blocks, i.e. ``wq_gemm`` decodes in registers).
GEMM_PIXELS: int | None = None
#: The ``algo`` of ``emit_wq_conv`` when its argument is None (tests override it).
ALGO = "auto"


def spec_algo(x_shape, w_shape, strides, pads, dilations) -> str:
    """The ``algo`` lowering puts in a ``wq_conv`` kernel spec: ``ALGO`` unless "auto",
    else ``wq_cache.cache_algo`` ("tile" for None). Target independent."""
    if ALGO != "auto":
        return ALGO
    shape = ConvShape.checked(x_shape, w_shape, strides, pads, dilations, 1)
    return cache_algo(shape) or "tile"


def _decode_panel(b, lay: WQLayout, gp: GroupParams, wp, blk0, nblk: int, panel) -> None:
    """``panel[t][k][16]`` = decoded block ``blk0 + t`` (the c16 panel of the tile)."""
    for t in range(nblk):
        decode_block(b, lay, gp, wp, b.add(blk0, i64(t)), gep(b, panel, t * lay.k * BLOCK))


def emit_wq_conv(
    module: ir.Module,
    name: str,
    *,
    x_shape,
    w_shape,
    storage: str,
    group_size: int,
    has_zp: bool,
    has_bias: bool,
    has_residual: bool,
    activation: str,
    act_alpha: float,
    act_beta: float,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    group: int = 1,
    w_layout: str = "wq16",
    algo: str | None = None,
    weight_id: int = 0,
) -> KernelFn:
    """Weight-only conv, ``group == 1``, ``wq16`` weights (module docstring). ``algo``
    (default ``ALGO``): ``"auto"`` (``wq_cache.cache_algo``), ``"tile"`` (decode per tile
    / in registers), or a decode-once float32 algorithm of ``wq_cache.py`` (Winograd
    where it applies, else ``"direct"``). Decode-once kernels hold one weight's cache:
    lowering gives every weight its own ``weight_id`` so kernel specs are not shared."""
    if group != 1 or w_layout != "wq16":
        raise ValueError("wq_conv handles group 1 convs on wq16 weights")
    shape = ConvShape.checked(x_shape, w_shape, strides, pads, dilations, group)
    algo = ALGO if algo is None else algo
    cached = cache_algo(shape) if algo == "auto" else None if algo == "tile" else algo
    if cached is not None and cached.startswith("winograd") and not winograd_ok(shape):
        cached = "direct"
    if cached is not None:
        lay = WQLayout(storage, shape.m, shape.c * shape.kh * shape.kw, group_size, has_zp)
        act = (activation, act_alpha, act_beta)
        return emit_wq_conv_cached(module, name, cached, shape, lay, has_bias=has_bias,
                                   has_residual=has_residual, act=act)  # fmt: skip
    del weight_id  # per-tile kernels keep no state: any weight
    limit = 2 * WQTile(module).mr if GEMM_PIXELS is None else GEMM_PIXELS
    if shape.oh * shape.ow <= limit:
        return _emit_as_gemm(module, name, shape, storage, group_size, has_zp, has_bias,
                             has_residual, (activation, act_alpha, act_beta))  # fmt: skip
    nimg, c, h, wd = x_shape
    m = int(w_shape[0])
    k = int(math.prod(w_shape[1:]))
    lay = WQLayout(storage, m, k, group_size, has_zp)
    ch = direct_tile(module).channels
    nfull, tail = divmod(m, ch)
    ntiles = nfull + (tail > 0)
    plane_out = shape.oh * shape.ow
    geo = dict(strides=tuple(strides), pads=tuple(pads), dilations=tuple(dilations), group=1,
               has_bias=has_bias, has_residual=has_residual,
               act=(activation, act_alpha, act_beta))  # fmt: skip
    subs = {}
    for cnt in {ch if nfull else None, tail or None} - {None}:
        sub_w = (cnt, *tuple(w_shape[1:]))
        subs[cnt] = emit_conv2d_direct(module, f"{name}.c{cnt}", x_shape=(1, c, h, wd),
                                       w_shape=sub_w, **geo).fn  # fmt: skip
    panel_bytes = -(-ch // BLOCK) * BLOCK * k * 4
    ntasks = min(ntiles, MAX_TASKS)
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=True)
    x, out = args[0], args[n_args - 1]
    wp = b.bitcast(args[1], I8_PTR)
    caps = [x, wp, args[2] if has_bias else x, args[2 + has_bias] if has_residual else x, out,
            args[-1]]  # fmt: skip
    work = 2 * nimg * m * k * plane_out

    def tasks(bb, lo, hi, a) -> None:
        xa, wa, ba, ra, oa, scr = a
        gp = GroupParams(bb, lay, wa)
        with for_range(bb, lo, hi, name="task") as ti:
            panel = bb.bitcast(bb.gep(scr, [bb.mul(ti, i64(panel_bytes))], inbounds=True), F32P)
            t0 = bb.udiv(bb.mul(ti, i64(ntiles)), i64(ntasks))
            t1 = bb.udiv(bb.mul(bb.add(ti, i64(1)), i64(ntiles)), i64(ntasks))
            with for_range(bb, t0, t1, name="tile") as t:
                m0 = bb.mul(t, i64(ch))

                def run(cnt: int) -> None:
                    nblk = -(-cnt // BLOCK)
                    _decode_panel(bb, lay, gp, wa, bb.mul(t, i64(ch // BLOCK)), nblk, panel)
                    with for_range(bb, 0, nimg, name="img") as img:
                        xi = gep(bb, xa, bb.mul(img, i64(c * h * wd)))
                        o = bb.mul(bb.add(bb.mul(img, i64(m)), m0), i64(plane_out))
                        call = [xi, panel]
                        if has_bias:
                            call.append(gep(bb, ba, m0))
                        if has_residual:
                            call.append(gep(bb, ra, o))
                        call.append(gep(bb, oa, o))
                        bb.call(subs[cnt], call)

                loops.full_or_tail(bb, t, nfull, ch, tail, run)

    parallel_for(b, ntasks, caps, tasks, work=work)
    b.ret_void()
    return KernelFn(fn, ntasks * panel_bytes)


def _emit_im2col(b, g: ConvShape, x, a, ld: int) -> None:
    """``a[p*ld + (c*KH + i)*KW + j]`` = the input under tap (i, j) of pixel ``p`` (0 in
    the padding)."""
    with for_range(b, 0, g.oh, name="oy") as oy, for_range(b, 0, g.ow, name="ox") as ox:
        row = gep(b, a, b.mul(b.add(b.mul(oy, i64(g.ow)), ox), i64(ld)))
        with for_range(b, 0, g.cg, name="c") as c:
            plane = gep(b, x, b.mul(c, i64(g.h * g.w)))
            for i in range(g.kh):
                yy = b.add(b.mul(oy, i64(g.sh)), i64(i * g.dh - g.pt))
                y_in = b.icmp_unsigned("<", yy, i64(g.h))
                for j in range(g.kw):
                    xx = b.add(b.mul(ox, i64(g.sw)), i64(j * g.dw - g.pl))
                    inside = b.and_(y_in, b.icmp_unsigned("<", xx, i64(g.w)))
                    idx = b.select(inside, b.add(b.mul(yy, i64(g.w)), xx), i64(0))
                    v = b.select(inside, load_at(b, plane, idx), f32(0.0))
                    store_at(b, v, row, b.add(b.mul(c, i64(g.kh * g.kw)), i64(i * g.kw + j)))


def _emit_as_gemm(module, name, g: ConvShape, storage, group_size, has_zp, has_bias,
                  has_residual, act) -> KernelFn:  # fmt: skip
    """Small output planes: im2col + ``wq_gemm`` + transposing epilogue (module doc)."""
    p, k = g.oh * g.ow, g.cg * g.kh * g.kw
    ld = padded_ld(k)
    gemm = emit_wq_gemm(module, f"{name}.gemm", x_shape=(p, k), w_shape=(g.m, k),
                        storage=storage, group_size=group_size, has_zp=has_zp, has_bias=False,
                        has_residual=False, activation="none", act_alpha=0.0,
                        act_beta=0.0, x_ld=ld)  # fmt: skip
    a_bytes = -(-p * ld * 4 // 64) * 64
    y_bytes = -(-p * g.m * 4 // 64) * 64
    n_args = 3 + has_bias + has_residual
    fn, b, args = loops.new_function(module, name, n_args, scratch=True)
    x, wp, out, scr = args[0], args[1], args[n_args - 1], args[-1]
    bias = args[2] if has_bias else None
    res = args[2 + has_bias] if has_residual else None
    a = b.bitcast(scr, F32P)
    y = b.bitcast(gep(b, scr, a_bytes), F32P)
    with for_range(b, 0, g.n, name="img") as img:
        _emit_im2col(b, g, gep(b, x, b.mul(img, i64(g.c * g.h * g.w))), a, ld)
        call = [a, wp, y]
        if gemm.scratch_bytes:
            call.append(gep(b, scr, a_bytes + y_bytes))
        b.call(gemm.fn, call)
        o_img = b.mul(img, i64(g.m * p))
        with for_range(b, 0, g.m, name="ch") as ch, for_range(b, 0, p, name="px") as px:
            v = load_at(b, y, b.add(b.mul(px, i64(g.m)), ch))
            if bias is not None:
                v = b.fadd(v, load_at(b, bias, ch))
            idx = b.add(o_img, b.add(b.mul(ch, i64(p)), px))
            if res is not None:
                v = b.fadd(v, load_at(b, res, idx))
            store_at(b, emit_activation(b, module, v, *act), out, idx)
    b.ret_void()
    return KernelFn(fn, a_bytes + y_bytes + gemm.scratch_bytes)
