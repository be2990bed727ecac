"""Lower the ``main`` function of an nn module to a list of kernel calls over buffers.

Each nn op becomes one ``Step``: a ``KernelSpec`` (emitter name + static keyword
arguments: shapes and attributes) applied to input and output ``Buffer``s. Kernel specs
are hashable, so the code generator emits one function per distinct spec (ResNet's
repeated blocks share kernels).

Buffers are storage, not values: ``nn.constant`` results are weights (no kernel),
``nn.reshape`` results alias their operand's buffer, and a value returned by ``main`` is
computed directly into the caller's output buffer. A copy is emitted only when that is
impossible (the output is a model input, a weight, or a buffer already bound to another
output); copies run last and read only inputs, weights and outputs. Ops whose results
are unused are skipped. Every shape must be static and every tensor float32.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from nnc.backends.llvm.kernels.pack import choose_conv_layout, pack_conv_weights
from nnc.backends.llvm.program import Buffer, IOSpec, KernelSpec, LoweredModel, Step
from nnc.errors import NNCError, UnsupportedOpError
from nnc.ir import ops_blocked as ob
from nnc.ir import ops_codebook as ocb
from nnc.ir import ops_compute as oc
from nnc.ir import ops_conv_algos as oca
from nnc.ir import ops_quant as oq
from nnc.ir import ops_shape as osh
from nnc.ir import ops_sparse as osp
from nnc.ir.builder import io_names, main_func, return_op
from nnc.ir.nn_base import NNOp, TensorSpec
from nnc.ir.ops_elementwise import BinaryOp, UnaryOp
from nnc.ir.types import DYNAMIC, dtype_of_numpy, numpy_dtype
from nnc.ir.weights import WeightAttr

#: Emitter name -> (module under nnc.backends.llvm.kernels, function name).
EMITTERS: dict[str, tuple[str, str]] = {
    "conv2d": ("conv2d", "emit_conv2d"),
    "conv2d_im2col": ("conv_im2col", "emit_conv2d_im2col"),
    "winograd_conv": ("winograd", "emit_winograd_conv"),
    "fft_conv": ("fft_conv", "emit_fft_conv"),
    "gemm": ("gemm", "emit_gemm"),
    "qconv": ("qconv", "emit_qconv"),
    "qgemm": ("qgemm", "emit_qgemm"),
    "quantize": ("quant_convert", "emit_quantize"),
    "dequantize": ("quant_convert", "emit_dequantize"),
    "requantize": ("quant_convert", "emit_requantize"),
    "wq_layer": ("wq_decode", "emit_wq_layer"),
    "wq_gemm": ("wq_gemm", "emit_wq_gemm"),
    "wq_conv": ("wq_conv", "emit_wq_conv"),
    "compact_conv": ("compact_conv", "emit_compact_conv"),
    "qmax_pool2d": ("qpool", "emit_qmax_pool2d"),
    "qglobal_avg_pool": ("qpool", "emit_qglobal_avg_pool"),
    "dyn_qlayer": ("dyn_quant", "emit_dyn_qlayer"),
    "dyn_gemm": ("dyn_qgemm", "emit_dyn_gemm"),
    "dyn_conv": ("dyn_qgemm", "emit_dyn_conv"),
    "dynamic_quantize": ("onnx_int", "emit_dynamic_quantize"),
    "int_to_float": ("onnx_int", "emit_int_to_float"),
    "matmul_integer": ("onnx_int", "emit_matmul_integer"),
    "conv_integer": ("onnx_int", "emit_conv_integer"),
    "matmul": ("gemm", "emit_matmul"),
    "max_pool2d": ("pool", "emit_max_pool2d"),
    "avg_pool2d": ("pool", "emit_avg_pool2d"),
    "global_pool": ("pool", "emit_global_pool"),
    "lrn": ("lrn", "emit_lrn"),
    "batch_norm": ("normalization", "emit_batch_norm"),
    "layer_norm": ("normalization", "emit_layer_norm"),
    "unary": ("elementwise", "emit_unary"),
    "binary": ("elementwise", "emit_binary"),
    "softmax": ("softmax", "emit_softmax"),
    "reduce": ("reduce", "emit_reduce"),
    "concat": ("data_movement", "emit_concat"),
    "transpose": ("data_movement", "emit_transpose"),
    "slice": ("data_movement", "emit_slice"),
    "pad": ("data_movement", "emit_pad"),
    "copy": ("data_movement", "emit_copy"),
    "sparse_gemm": ("sparse_gemm", "emit_sparse_gemm"),
    "codebook_gemm": ("codebook_gemm", "emit_codebook_gemm"),
    "to_blocked": ("blocked", "emit_to_blocked"),
    "from_blocked": ("blocked", "emit_from_blocked"),
    "conv2d_blocked": ("blocked", "emit_conv2d_blocked"),
    "max_pool_blocked": ("blocked", "emit_max_pool_blocked"),
}


def emitter_function(emitter: str) -> Callable[..., Any]:
    """The ``emit_*`` function for an emitter name (kernel modules import lazily)."""
    mod_name, fn_name = EMITTERS[emitter]
    module = importlib.import_module(f"nnc.backends.llvm.kernels.{mod_name}")
    return getattr(module, fn_name)


# -- op -> kernel spec rules -------------------------------------------------------------

Rule = Callable[[Any], KernelSpec]


def _shape(value: SSAValue) -> tuple[int, ...]:
    return TensorSpec.of(value).shape


def _conv_kernel_name(op: oc.ConvOp) -> str:
    """``conv2d`` (direct), or ``conv2d_im2col`` when select-conv-algo asked for it via the
    discardable ``nn.conv_algo`` attribute."""
    algo = op.attributes.get("nn.conv_algo")
    return "conv2d_im2col" if getattr(algo, "data", None) == "im2col" else "conv2d"


def _constant_weight(value: SSAValue) -> WeightAttr | None:
    """The weight of ``value`` when an ``nn.constant`` defines it, else None."""
    owner = value.owner
    return owner.prop("value") if isinstance(owner, oc.ConstantOp) else None


def _conv_layout(op: oc.ConvOp, kernel: str) -> dict:
    """``{"w_layout": "c16"}`` when the per-layer rule of ``kernels/pack.py`` picks the
    direct kernel on compile-time packed weights (see ``_Lowering.packed_weight``)."""
    if kernel != "conv2d":
        return {}
    x, w = _shape(op.operand_named("x")), _shape(op.operand_named("w"))
    const = _constant_weight(op.operand_named("w")) is not None
    layout = choose_conv_layout(x, w, op.prop("group"), const)
    return {} if layout == "oihw" else {"w_layout": layout}


def _compact_spec(op: oc.ConvOp) -> KernelSpec | None:
    """``compact_conv`` (``kernels/compact_conv.py``) for a conv the ``compact-weights``
    pass marked, when it still qualifies (group 1, constant weight, ``c16`` rule) and a
    compressed format pays; None otherwise (the float32 kernels)."""
    from nnc.backends.llvm.kernels.compact_conv import spec_algo
    from nnc.backends.llvm.kernels.compact_pack import choose_format
    from nnc.backends.llvm.kernels.conv_shape import ConvShape

    wa = _constant_weight(op.operand_named("w"))
    if "nn.compact_weight" not in op.attributes or wa is None or op.prop("group") != 1:
        return None
    x, w = _shape(op.operand_named("x")), _shape(op.operand_named("w"))
    if len(x) != 4 or choose_conv_layout(x, w, 1, True) != "c16":
        return None
    fmt = choose_format(wa.array)
    if fmt is None:
        return None
    geo = {k: op.prop(k) for k in ("strides", "pads", "dilations")}
    shape = ConvShape.checked(x, w, geo["strides"], geo["pads"], geo["dilations"], 1)
    return KernelSpec.make("compact_conv", w_layout="compact", fmt=fmt, algo=spec_algo(shape),
                           x_shape=x, w_shape=w, **geo, group=1,
                           **_conv_algo_epilogue(op))  # fmt: skip


def _conv(op: oc.ConvOp) -> KernelSpec:
    compact = _compact_spec(op)
    if compact is not None:
        return compact
    kernel = _conv_kernel_name(op)
    return KernelSpec.make(
        kernel,
        **_conv_layout(op, kernel),
        x_shape=_shape(op.operand_named("x")),
        w_shape=_shape(op.operand_named("w")),
        has_bias=op.operand_named("bias") is not None,
        has_residual=op.operand_named("residual") is not None,
        strides=op.prop("strides"),
        pads=op.prop("pads"),
        dilations=op.prop("dilations"),
        group=op.prop("group"),
        activation=op.prop("activation"),
        act_alpha=op.prop("act_alpha"),
        act_beta=op.prop("act_beta"),
    )


def _conv_algo_epilogue(op) -> dict:
    return {
        "has_bias": op.operand_named("bias") is not None,
        "has_residual": op.operand_named("residual") is not None,
        "activation": op.prop("activation"),
        "act_alpha": op.prop("act_alpha"),
        "act_beta": op.prop("act_beta"),
    }


def _winograd_conv(op: oca.WinogradConvOp) -> KernelSpec:
    return KernelSpec.make(
        "winograd_conv",
        x_shape=_shape(op.operand_named("x")),
        u_shape=_shape(op.operand_named("u")),
        tile=op.prop("tile"),
        pads=op.prop("pads"),
        **_conv_algo_epilogue(op),
    )


def _fft_conv(op: oca.FFTConvOp) -> KernelSpec:
    return KernelSpec.make(
        "fft_conv",
        x_shape=_shape(op.operand_named("x")),
        wf_shape=_shape(op.operand_named("wf")),
        kernel=op.prop("kernel"),
        pads=op.prop("pads"),
        fft_shape=op.prop("fft_shape"),
        **_conv_algo_epilogue(op),
    )


def _int_op_kwargs(op) -> dict:
    """Static kwargs shared by ``emit_qconv``/``emit_qgemm``: weights, bias and every
    quantization parameter (the kernels pack weights into their own globals)."""
    w, bias = op.operand_named("w"), op.operand_named("bias")
    wa = _constant_weight(w)
    ba = None if bias is None else _constant_weight(bias)
    if wa is None or (bias is not None and ba is None):
        raise UnsupportedOpError(f"op '{op.name}': integer kernels need constant weights/bias")
    kw = dict(
        w=wa, bias=ba, w_scale=op.prop("w_scale"), x_scale=op.prop("x_scale"),
        x_zp=op.prop("x_zp"), x_dtype=TensorSpec.of(op.operand_named("x")).dtype,
        y_dtype=op.prop("out_dtype"), y_scale=op.prop("y_scale"), y_zp=op.prop("y_zp"),
        activation=op.prop("activation"), act_alpha=op.prop("act_alpha"),
        act_beta=op.prop("act_beta"),
    )  # fmt: skip
    res = op.operand_named("residual")
    if res is not None:
        r_dtype = TensorSpec.of(res).dtype
        kw.update(r_scale=op.prop("r_scale"), r_zp=op.prop("r_zp"), r_dtype=r_dtype)
    return kw


def _qconv(op: oq.QConvOp) -> KernelSpec:
    geo = {k: op.prop(k) for k in ("strides", "pads", "dilations", "group")}
    return KernelSpec.make(
        "qconv", x_shape=_shape(op.operand_named("x")), **geo, **_int_op_kwargs(op)
    )


def _qgemm(op: oq.QGemmOp) -> KernelSpec:
    return KernelSpec.make("qgemm", a_shape=_shape(op.operand_named("x")), **_int_op_kwargs(op))


#: Integer kernels: their buffers are x and the residual (weights live in the kernel).
INT_KERNELS = ("qconv", "qgemm", "dyn_gemm", "dyn_conv")
#: Conversion kernels between float32 and integer tensors (kernels/quant_convert.py).
QUANT_CONVERT = ("quantize", "dequantize", "requantize")


def _qparams(op) -> dict:
    p = op.props_dict()
    return {
        "shape": _shape(op.operands[0]),
        "scale": tuple(float(v) for v in p["scale"].array.reshape(-1)),
        "zp": tuple(int(v) for v in p["zero_point"].array.reshape(-1)),
        "axis": p["axis"],
        "group_size": p["group_size"],
    }


def _quantize(op: oq.QuantizeOp) -> KernelSpec:
    return KernelSpec.make("quantize", dtype=op.prop("dtype"), **_qparams(op))


def _dequantize(op: oq.DequantizeOp) -> KernelSpec:
    in_dtype = TensorSpec.of(op.operands[0]).dtype
    return KernelSpec.make("dequantize", in_dtype=in_dtype, **_qparams(op))


def _wq_layer(op) -> KernelSpec:
    """Weight-only / dynamic layers: dequant-in-GEMM (``_wq16_spec``) or the int8 kernels
    (``dyn_gemm``/``dyn_conv``) for constant weights, else the decode / scalar fallbacks."""
    p = op.props_dict()
    is_conv = isinstance(op, oq.WQConvOp)
    has_residual = op.operand_named("residual") is not None
    geo = {k: p[k] for k in ("strides", "pads", "dilations", "group")} if is_conv else {}
    epi = {k: p[k] for k in ("activation", "act_alpha", "act_beta")}
    if p["act_quant"] == "dynamic":  # kernels/dyn_qgemm.py, else dyn_quant.py
        wa, bias = _constant_weight(op.operand_named("w")), op.operand_named("bias")
        ba = None if bias is None else _constant_weight(bias)
        depthwise = is_conv and p["group"] > 1 and p["w_shape"][1] == 1
        if wa is not None and (bias is None or ba is not None) and not depthwise:
            return KernelSpec.make(
                "dyn_conv" if is_conv else "dyn_gemm",
                x_shape=_shape(op.operand_named("x")),
                w=wa,
                bias=ba,
                scale=tuple(float(v) for v in p["scale"].array.reshape(-1)),
                has_residual=has_residual,
                **epi,
                **geo,
                **({"w_shape": p["w_shape"]} if is_conv else {}),
            )
        return KernelSpec.make(
            "dyn_qlayer",
            kind="conv" if is_conv else "gemm",
            x_shape=_shape(op.operand_named("x")),
            w_shape=p["w_shape"],
            scale=tuple(float(v) for v in p["scale"].array.reshape(-1)),
            has_bias=op.operand_named("bias") is not None,
            has_residual=has_residual,
            **epi,
            **geo,
        )
    wq16 = _wq16_spec(op, is_conv, geo, epi)
    if wq16 is not None:
        return wq16
    if has_residual and not is_conv:
        raise UnsupportedOpError(
            f"op '{op.name}' with a residual is not supported by the LLVM backend yet"
        )
    return KernelSpec.make(
        "wq_layer",
        kind="conv" if is_conv else "gemm",
        x_shape=_shape(op.operand_named("x")),
        w_shape=p["w_shape"],
        storage=p["storage"],
        group_size=p["group_size"],
        scale=tuple(float(v) for v in p["scale"].array.astype("float32").reshape(-1)),
        zp=tuple(int(v) for v in p["zero_point"].array.reshape(-1)),
        has_bias=op.operand_named("bias") is not None,
        has_residual=has_residual,
        activation=p["activation"],
        act_alpha=p["act_alpha"],
        act_beta=p["act_beta"],
        **geo,
    )


def _wq16_spec(op, is_conv: bool, geo: dict, epi: dict) -> KernelSpec | None:
    """Dequant-in-GEMM kernels (``kernels/wq_gemm.py``, ``wq_conv.py``) on the ``wq16``
    repacked weight, when the weight is a constant (and a conv would run the direct
    kernel in float); None otherwise."""
    from nnc.backends.llvm.kernels.wq_pack import LAYOUT, layout_of

    p = op.props_dict()
    if _constant_weight(op.operand_named("w")) is None:
        return None
    x_shape = _shape(op.operand_named("x"))
    if is_conv and (
        p["group"] != 1 or choose_conv_layout(x_shape, tuple(p["w_shape"]), 1, True) != "c16"
    ):
        return None
    lay = layout_of(p["storage"], p["w_shape"], p["group_size"], p["zero_point"].array)
    if is_conv:  # decode-once float32 kernel or per-tile decode (kernels/wq_cache.py)
        from nnc.backends.llvm.kernels.wq_conv import spec_algo

        geo = {**geo, "algo": spec_algo(x_shape, p["w_shape"], p["strides"], p["pads"],
                                        p["dilations"])}  # fmt: skip
    return KernelSpec.make(
        "wq_conv" if is_conv else "wq_gemm",
        x_shape=x_shape,
        w_shape=p["w_shape"],
        storage=lay.storage,
        group_size=lay.group_size,
        has_zp=lay.has_zp,
        has_bias=op.operand_named("bias") is not None,
        has_residual=op.operand_named("residual") is not None,
        w_layout=LAYOUT,
        **epi,
        **geo,
    )


def _zp_size(op, name: str) -> int | None:
    v = op.operand_named(name)
    return None if v is None else math.prod(_shape(v))


def _matmul_integer(op: oq.MatMulIntegerOp) -> KernelSpec:
    a, b = op.operand_named("a"), op.operand_named("b")
    a_zp, b_zp = _zp_size(op, "a_zp"), _zp_size(op, "b_zp")
    if len(_shape(b)) != 2 or (a_zp or 1) != 1:
        raise UnsupportedOpError(
            f"op '{op.name}' with a batched right operand or per-row a_zp is not supported "
            "by the LLVM backend"
        )
    return KernelSpec.make(
        "matmul_integer",
        a_shape=_shape(a),
        b_shape=_shape(b),
        a_dtype=TensorSpec.of(a).dtype,
        b_dtype=TensorSpec.of(b).dtype,
        a_zp=a_zp,
        b_zp=b_zp,
    )


def _conv_integer(op: oq.ConvIntegerOp) -> KernelSpec:
    x, w = op.operand_named("x"), op.operand_named("w")
    return KernelSpec.make(
        "conv_integer",
        x_shape=_shape(x),
        w_shape=_shape(w),
        x_dtype=TensorSpec.of(x).dtype,
        w_dtype=TensorSpec.of(w).dtype,
        x_zp=_zp_size(op, "x_zp"),
        w_zp=_zp_size(op, "w_zp"),
        **{k: op.prop(k) for k in ("strides", "pads", "dilations", "group")},
    )


def _requantize(op: oq.RequantizeOp) -> KernelSpec:
    return KernelSpec.make(
        "requantize",
        shape=_shape(op.operands[0]),
        in_dtype=TensorSpec.of(op.operands[0]).dtype,
        **op.props_dict(),
    )


def _gemm(op: oc.GemmOp) -> KernelSpec:
    c = op.operand_named("c")
    return KernelSpec.make(
        "gemm",
        a_shape=_shape(op.operand_named("a")),
        b_shape=_shape(op.operand_named("b")),
        trans_a=bool(op.prop("trans_a")),
        trans_b=bool(op.prop("trans_b")),
        alpha=op.prop("alpha"),
        beta=op.prop("beta"),
        c_shape=None if c is None else _shape(c),
        activation=op.prop("activation"),
        act_alpha=op.prop("act_alpha"),
        act_beta=op.prop("act_beta"),
    )


def _matmul(op: oc.MatMulOp) -> KernelSpec:
    a, b = op.operands
    return KernelSpec.make("matmul", a_shape=_shape(a), b_shape=_shape(b))


def _max_pool(op: oc.MaxPoolOp) -> KernelSpec:
    dtype = TensorSpec.of(op.operands[0]).dtype
    extra = {"dtype": dtype} if dtype in ("i8", "u8") else {}
    return KernelSpec.make(
        "qmax_pool2d" if extra else "max_pool2d",
        **extra,
        x_shape=_shape(op.operands[0]),
        kernel=op.prop("kernel"),
        strides=op.prop("strides"),
        pads=op.prop("pads"),
        dilations=op.prop("dilations"),
        ceil_mode=bool(op.prop("ceil_mode")),
    )


def _avg_pool(op: oc.AvgPoolOp) -> KernelSpec:
    return KernelSpec.make(
        "avg_pool2d",
        x_shape=_shape(op.operands[0]),
        kernel=op.prop("kernel"),
        strides=op.prop("strides"),
        pads=op.prop("pads"),
        ceil_mode=bool(op.prop("ceil_mode")),
        count_include_pad=bool(op.prop("count_include_pad")),
    )


def _global_pool(kind: str) -> Rule:
    return lambda op: KernelSpec.make("global_pool", x_shape=_shape(op.operands[0]), kind=kind)


def _lrn(op: oc.LRNOp) -> KernelSpec:
    return KernelSpec.make(
        "lrn",
        x_shape=_shape(op.operands[0]),
        size=op.prop("size"),
        alpha=op.prop("alpha"),
        beta=op.prop("beta"),
        bias=op.prop("bias"),
    )


def _batch_norm(op: oc.BatchNormOp) -> KernelSpec:
    return KernelSpec.make("batch_norm", x_shape=_shape(op.operands[0]), epsilon=op.prop("epsilon"))


def _layer_norm(op: oc.LayerNormOp) -> KernelSpec:
    return KernelSpec.make(
        "layer_norm",
        shape=_shape(op.operand_named("x")),
        axis=op.prop("axis"),
        epsilon=op.prop("epsilon"),
        has_bias=op.operand_named("bias") is not None,
    )


def _unary(op: UnaryOp) -> KernelSpec:
    alpha, beta = op.act_params()
    return KernelSpec.make(
        "unary", shape=_shape(op.operands[0]), kind=op.KIND, alpha=alpha, beta=beta
    )


def _binary(op: BinaryOp) -> KernelSpec:
    a, b = op.operands
    return KernelSpec.make(
        "binary",
        a_shape=_shape(a),
        b_shape=_shape(b),
        out_shape=_shape(op.results[0]),
        kind=op.KIND,
    )


def _softmax(log: bool) -> Rule:
    return lambda op: KernelSpec.make(
        "softmax", shape=_shape(op.operands[0]), axis=op.prop("axis"), log=log
    )


def _reduce(op: osh.ReduceOp) -> KernelSpec:
    shape = _shape(op.operands[0])
    axes = sorted({a % len(shape) for a in op.prop("axes")})
    return KernelSpec.make(
        "reduce", shape=shape, axes=axes, keepdims=bool(op.prop("keepdims")), kind=op.KIND
    )


def _concat(op: osh.ConcatOp) -> KernelSpec:
    return KernelSpec.make("concat", shapes=[_shape(v) for v in op.operands], axis=op.prop("axis"))


def _transpose(op: osh.TransposeOp) -> KernelSpec:
    return KernelSpec.make("transpose", shape=_shape(op.operands[0]), perm=op.prop("perm"))


def _slice(op: osh.SliceOp) -> KernelSpec:
    shape = _shape(op.operands[0])
    ranges = osh.SliceOp.normalized(shape, op.props_dict())
    return KernelSpec.make(
        "slice",
        shape=shape,
        starts=[r[0] for r in ranges],
        ends=[r[1] for r in ranges],
        steps=[r[2] for r in ranges],
    )


def _pad(op: osh.PadOp) -> KernelSpec:
    return KernelSpec.make(
        "pad",
        shape=_shape(op.operands[0]),
        pads=op.prop("pads"),
        mode=op.prop("mode"),
        value=op.prop("value"),
    )


def _sparse_gemm(op: osp.SparseGemmOp) -> KernelSpec:
    # The CSR structure goes into the kernel as constant globals (bytes hash cheaply).
    return KernelSpec.make(
        "sparse_gemm",
        layout=op.prop("layout"),
        x_shape=_shape(op.operand_named("x")),
        n=len(op.prop("row_ptr").array) - 1,
        k=op.prop("k"),
        row_ptr=op.prop("row_ptr").array.astype("<i4").tobytes(),
        col_idx=op.prop("col_idx").array.astype("<i4").tobytes(),
        **_conv_algo_epilogue(op),
    )


def _codebook_gemm(op: ocb.CodebookGemmOp) -> KernelSpec:
    """gemm layout: m = rows of x flattened to (m, K); conv1x1: m = H*W pixels per image."""
    x = _shape(op.operand_named("x"))
    conv = op.prop("layout") == "conv1x1"
    m = x[2] * x[3] if conv else math.prod(x[:-1])
    return KernelSpec.make(
        "codebook_gemm",
        m=int(m),
        n=op.prop("n"),
        k=x[1] if conv else x[-1],
        bits=op.prop("bits"),
        has_bias=op.operand_named("bias") is not None,
        layout=op.prop("layout"),
        images=x[0] if conv else 1,
        **{key: op.prop(key) for key in ("activation", "act_alpha", "act_beta")},
    )


def _conv_blocked(op: ob.ConvBlockedOp) -> KernelSpec:
    """``nn.conv_blocked``: the direct kernel on packed weights, blocked activations."""
    x, w = _shape(op.operand_named("x")), _shape(op.operand_named("w"))
    if x[-1] != 16 or _constant_weight(op.operand_named("w")) is None:
        raise UnsupportedOpError(
            f"nn.conv_blocked: the LLVM backend needs blocks of 16 channels and a constant "
            f"weight (got block {x[-1]}); use nchwc-layout{{block=16}}"
        )
    return KernelSpec.make(
        "conv2d_blocked",
        w_layout="c16",
        pack_group=1,
        x_shape=(x[0], w[1] * op.prop("group"), x[2], x[3]),
        w_shape=w,
        strides=op.prop("strides"),
        pads=op.prop("pads"),
        dilations=op.prop("dilations"),
        group=op.prop("group"),
        **_conv_algo_epilogue(op),
    )


def _max_pool_blocked(op: ob.MaxPoolBlockedOp) -> KernelSpec:
    """``nn.max_pool_blocked`` over whole blocks (``x_shape``: N, CB*16, H, W)."""
    n, cb, h, w, c = _shape(op.operands[0])
    if c != 16:
        raise UnsupportedOpError(f"nn.max_pool_blocked: the LLVM backend needs block 16, got {c}")
    return KernelSpec.make(
        "max_pool_blocked",
        x_shape=(n, cb * c, h, w),
        out_hw=_shape(op.results[0])[2:4],
        **{k: op.prop(k) for k in ("kernel", "strides", "pads", "dilations")},
    )


#: nn op class -> kernel spec builder. Looked up along the MRO (UnaryOp, BinaryOp...).
RULES: dict[type, Rule] = {
    oc.ConvOp: _conv,
    oca.WinogradConvOp: _winograd_conv,
    oca.FFTConvOp: _fft_conv,
    oc.GemmOp: _gemm,
    oq.QConvOp: _qconv,
    oq.QGemmOp: _qgemm,
    oq.QuantizeOp: _quantize,
    oq.DequantizeOp: _dequantize,
    oq.RequantizeOp: _requantize,
    oq.QGlobalAvgPoolOp: lambda op: KernelSpec.make(
        "qglobal_avg_pool",
        x_shape=_shape(op.operands[0]),
        x_dtype=TensorSpec.of(op.operands[0]).dtype,
        **op.props_dict(),
    ),
    oq.WQConvOp: _wq_layer,
    oq.WQGemmOp: _wq_layer,
    oq.DynamicQuantizeOp: lambda op: KernelSpec.make(
        "dynamic_quantize", shape=_shape(op.operands[0])
    ),
    oq.IntToFloatOp: lambda op: KernelSpec.make(
        "int_to_float", shape=_shape(op.operands[0]), dtype=TensorSpec.of(op.operands[0]).dtype
    ),
    oq.MatMulIntegerOp: _matmul_integer,
    oq.ConvIntegerOp: _conv_integer,
    oc.MatMulOp: _matmul,
    oc.MaxPoolOp: _max_pool,
    oc.AvgPoolOp: _avg_pool,
    oc.GlobalAvgPoolOp: _global_pool("avg"),
    oc.GlobalMaxPoolOp: _global_pool("max"),
    oc.LRNOp: _lrn,
    oc.BatchNormOp: _batch_norm,
    oc.LayerNormOp: _layer_norm,
    UnaryOp: _unary,
    BinaryOp: _binary,
    osh.SoftmaxOp: _softmax(False),
    osh.LogSoftmaxOp: _softmax(True),
    osh.ReduceOp: _reduce,
    osh.ConcatOp: _concat,
    osh.TransposeOp: _transpose,
    osh.SliceOp: _slice,
    osh.PadOp: _pad,
    osp.SparseGemmOp: _sparse_gemm,
    ocb.CodebookGemmOp: lambda op: _codebook_gemm(op),
    ob.ConvBlockedOp: _conv_blocked,
    ob.ToBlockedOp: lambda op: KernelSpec.make(
        "to_blocked", shape=_shape(op.operands[0]), block=op.prop("block")
    ),
    ob.MaxPoolBlockedOp: _max_pool_blocked,
    ob.FromBlockedOp: lambda op: KernelSpec.make(
        "from_blocked", shape=_shape(op.results[0]), block=_shape(op.operands[0])[-1]
    ),
}


def kernel_spec_for(op: Operation) -> KernelSpec:
    """The kernel computing ``op``; raises UnsupportedOpError if the backend has none."""
    for cls in type(op).__mro__:
        if cls in RULES:
            return RULES[cls](op)
    raise UnsupportedOpError(f"op '{op.name}' is not supported by the LLVM backend")


# -- lowering ----------------------------------------------------------------------------


def _nbytes(spec: TensorSpec) -> int:
    return math.prod(spec.shape) * numpy_dtype(spec.dtype).itemsize


def _check_static(value: SSAValue, what: str) -> TensorSpec:
    spec = TensorSpec.of(value)
    if DYNAMIC in spec.shape:
        dims = "x".join("?" if d == DYNAMIC else str(d) for d in spec.shape)
        raise NNCError(
            f"{what} has a dynamic shape ({dims}); the LLVM backend needs static shapes: "
            "specialize them first (e.g. the specialize-shapes pass with the input shapes)"
        )
    return spec


def _live_ops(ops: list[Operation], returned: list[SSAValue]) -> set[int]:
    """ids of ops whose results reach a returned value (ops are pure)."""
    needed = {id(v) for v in returned}
    live: set[int] = set()
    for op in reversed(ops):
        if any(id(r) in needed for r in op.results):
            live.add(id(op))
            needed.update(id(v) for v in op.operands)
    return live


def _concat_views(ops: list[Operation]) -> dict[SSAValue, Buffer]:
    """In-place concats: ``{concat result: its buffer, operand: view of that buffer}``.

    A float32 ``nn.concat`` whose leading dims (before ``axis``) are all 1 is a run of
    contiguous slices; when every operand is the only result of a kernel op (not a
    weight, reshape, input or another concat), is used by this concat alone and starts at
    a 64-byte multiple, each producer writes straight into its slice and the concat
    emits no step (``Buffer.parent``; the planner keeps the whole buffer live).
    """
    views: dict[SSAValue, Buffer] = {}
    for op in ops:
        if not isinstance(op, osh.ConcatOp):
            continue
        out = TensorSpec.of(op.results[0])
        axis = op.prop("axis") % len(out.shape)
        if out.dtype != "f32" or math.prod(out.shape[:axis]) != 1:
            continue
        slices, offset = [], 0
        for v in op.operands:
            owner = v.owner
            if (
                not isinstance(owner, NNOp)
                or isinstance(owner, (oc.ConstantOp, osh.ReshapeOp, osh.ConcatOp))
                or len(owner.results) != 1
                or len(list(v.uses)) != 1
                or v in views
                or offset % 64
            ):
                break
            slices.append((v, offset, _nbytes(TensorSpec.of(v))))
            offset += slices[-1][2]
        else:
            parent = Buffer("temp", _nbytes(out), "f32", label=op.name)
            views[op.results[0]] = parent
            for v, off, n in slices:
                views[v] = Buffer("view", n, "f32", label=op.name, parent=parent, offset=off)
    return views


class _Lowering:
    def __init__(self, module: ModuleOp):
        self.fn = main_func(module)
        block = self.fn.body.blocks[0]
        in_names, out_names = io_names(module)
        ret = return_op(module)
        self.returned = list(ret.operands)
        self.ops = [op for op in block.ops if op is not ret]
        self.buffers: dict[SSAValue, Buffer] = {}
        self.weight_index: dict[WeightAttr, Buffer] = {}
        self.packed_index: dict[tuple, Buffer] = {}
        self.views: dict[SSAValue, Buffer] = {}  # _concat_views
        inputs = []
        for i, (arg, name) in enumerate(zip(block.args, in_names)):
            spec = _check_static(arg, f"input '{name}'")
            inputs.append(IOSpec(name, spec.shape, spec.dtype))
            self.buffers[arg] = Buffer("input", _nbytes(spec), spec.dtype, i, name)
        outputs = []
        for v, name in zip(self.returned, out_names):
            spec = _check_static(v, f"output '{name}'")
            outputs.append(IOSpec(name, spec.shape, spec.dtype))
        self.model = LoweredModel(inputs, outputs)

    def run(self) -> LoweredModel:
        live = _live_ops(self.ops, self.returned)
        self.views = _concat_views([op for op in self.ops if id(op) in live])
        for op in self.ops:
            if id(op) in live:
                self.lower_op(op)
        self.bind_outputs()
        self.drop_unused_weights()
        return self.model

    def drop_unused_weights(self) -> None:
        """Forget weights no step reads (an original conv weight replaced by its packed
        copy), renumbering the rest in order."""
        bufs = {
            id(b): b
            for s in self.model.steps
            for b in (*s.inputs, *s.outputs)
            if b.kind == "weight"
        }
        old_index = sorted({b.index for b in bufs.values()})
        renumber = {old: new for new, old in enumerate(old_index)}
        self.model.weights = [self.model.weights[i] for i in old_index]
        for buf in bufs.values():
            buf.index = renumber[buf.index]

    def lower_op(self, op: Operation) -> None:
        where = f"'{op.name}'"
        if op.results:
            where += f" (result {TensorSpec.of(op.results[0]).shape})"
        for r in op.results:
            _check_static(r, f"result of {where}")
        if isinstance(op, oc.ConstantOp):
            self.buffers[op.results[0]] = self.weight(op.prop("value"))
            return
        if isinstance(op, osh.ReshapeOp):  # same dense bytes: alias the operand's storage
            self.buffers[op.results[0]] = self.buffers[op.operands[0]]
            return
        if not isinstance(op, NNOp):
            raise UnsupportedOpError(f"op '{op.name}' is not supported by the LLVM backend")
        if isinstance(op, osh.ConcatOp) and op.results[0] in self.views:  # in place: no step
            self.buffers[op.results[0]] = self.views[op.results[0]]
            return
        kernel = kernel_spec_for(op)
        ins = [self.buffers[v] for v in op.operands]
        int_kernel = kernel.emitter in INT_KERNELS
        if int_kernel:  # weights/bias are packed into the kernel; pass x and residual only
            res = op.operand_named("residual")
            ins = [self.buffers[op.operand_named("x")]]
            ins += [] if res is None else [self.buffers[res]]
        if dict(kernel.kwargs).get("w_layout") == "c16":
            group = dict(kernel.kwargs).get("pack_group", op.prop("group"))
            ins[1] = self.packed_weight(_constant_weight(op.operands[1]), group)
        if dict(kernel.kwargs).get("w_layout") == "compact":  # kernels/compact_conv.py
            ins[1] = self.compact_weight(op, dict(kernel.kwargs)["fmt"])
            kernel = KernelSpec.make(kernel.emitter, **kernel.kwargs_dict(),
                                     weight_id=ins[1].index)  # fmt: skip
        if dict(kernel.kwargs).get("w_layout") == "wq16":  # kernels/wq_pack.py
            ins[1] = self.wq16_weight(op)
            if dict(kernel.kwargs).get("algo", "tile") != "tile":  # one cache per weight
                kernel = KernelSpec.make(kernel.emitter, **kernel.kwargs_dict(),
                                         weight_id=ins[1].index)  # fmt: skip
        outs = []
        for r in op.results:
            spec = TensorSpec.of(r)
            view = self.views.get(r)  # an in-place concat's slice
            outs.append(view or Buffer("temp", _nbytes(spec), spec.dtype, label=op.name))
            self.buffers[r] = outs[-1]
        for buf in (*ins, *outs):
            int_ok = int_kernel or kernel.emitter in (
                *QUANT_CONVERT,
                "wq_layer",
                "wq_gemm",
                "wq_conv",
                "qmax_pool2d",
                "qglobal_avg_pool",
                "dyn_qlayer",
                "dynamic_quantize",
                "int_to_float",
                "matmul_integer",
                "conv_integer",
                "codebook_gemm",
                "compact_conv",
            )
            if buf.dtype != "f32" and not (
                int_ok and buf.dtype in ("i8", "u8", "i32", "f16", "u16")
            ):
                raise UnsupportedOpError(
                    f"op {where}: the LLVM backend supports float32 tensors only, got {buf.dtype}"
                )
        from nnc.report import count_macs, layer_name

        shape = TensorSpec.of(op.results[0]).shape if op.results else ()
        self.model.steps.append(
            Step(kernel, ins, outs, op.name, layer_name(op), shape, count_macs(op))
        )

    def packed_weight(self, attr: WeightAttr, group: int) -> Buffer:
        """A conv weight packed at compile time into the ``c16`` layout (once per weight)."""
        return self._derived_weight(
            (attr, "c16", group), lambda: pack_conv_weights(attr.array, group), "f32"
        )

    def compact_weight(self, op, fmt: str) -> Buffer:
        """A conv weight encoded (once per weight) in a ``kernels/compact_pack.py`` format."""
        from nnc.backends.llvm.kernels.compact_pack import encode

        attr = _constant_weight(op.operands[1])
        return self._derived_weight((attr, "compact", fmt), lambda: encode(attr.array, fmt), "u8")

    def wq16_weight(self, op) -> Buffer:
        """A weight-only op's weight repacked (with its scales) into the ``wq16`` layout."""
        from nnc.backends.llvm.kernels.wq_pack import pack_wq_op

        p = op.props_dict()
        zp = p["zero_point"] if p["zero_point"].array.size else None
        scale = p["scale"] if p["scale"].array.size else None
        key = (_constant_weight(op.operands[1]), scale, zp, "wq16")
        return self._derived_weight(key, lambda: pack_wq_op(op), "u8")

    def _derived_weight(self, key: tuple, make, dtype: str) -> Buffer:
        """The weight buffer of an array derived from constants at compile time (packed,
        encoded...): ``make()`` runs once per ``key``; later calls share the buffer."""
        buf = self.packed_index.get(key)
        if buf is None:
            arr = make()
            buf = Buffer("weight", arr.nbytes, dtype, len(self.model.weights))
            self.model.weights.append(arr)
            self.packed_index[key] = buf
        return buf

    def weight(self, attr: WeightAttr) -> Buffer:
        buf = self.weight_index.get(attr)
        if buf is None:
            arr = attr.array
            buf = Buffer("weight", arr.nbytes, dtype_of_numpy(arr.dtype), len(self.model.weights))
            self.model.weights.append(arr)
            self.weight_index[attr] = buf
        return buf

    def bind_outputs(self) -> None:
        """Compute each output in place when possible; otherwise copy it at the end."""
        for j, (v, io) in enumerate(zip(self.returned, self.model.outputs)):
            src = self.buffers[v]
            if src.kind == "temp":
                src.kind, src.index, src.label = "output", j, io.name
                continue
            if io.dtype != "f32":
                raise UnsupportedOpError(
                    f"output '{io.name}': the LLVM backend supports float32 only, got {io.dtype}"
                )
            dst = Buffer("output", io.nbytes, io.dtype, j, io.name)
            size = math.prod(io.shape)
            copy = KernelSpec.make("copy", size=size)
            self.model.steps.append(Step(copy, [src], [dst], "copy", io.name, io.shape))


def lower_module(module: ModuleOp) -> LoweredModel:
    """Lower ``main`` of ``module`` to kernel steps (see the module docstring).

    Raises NNCError for dynamic shapes and UnsupportedOpError for ops or dtypes the
    backend cannot compile.
    """
    return _Lowering(module).run()
