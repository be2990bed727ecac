"""Export an nn module (typically after ``quantize``) to an ONNX model in QDQ form, so
other runtimes (onnxruntime...) can run our quantized model.

``export_qdq(module) -> onnx.ModelProto`` (opset 21, the first with blocked
quantization). Mapping:

* ``nn.quantize`` / ``nn.dequantize`` -> QuantizeLinear / DequantizeLinear (per-tensor,
  per-axis, blocked); ``nn.requantize`` -> DequantizeLinear + QuantizeLinear.
* ``nn.qconv`` / ``nn.qgemm`` -> DequantizeLinear(x), DequantizeLinear(int8 weight,
  per-channel), DequantizeLinear(int32 bias, scale x_scale * w_scale) -> Conv / Gemm or
  MatMul (+ Add residual, Relu / Clip) -> QuantizeLinear(y): the QDQ pattern runtimes fuse
  into QLinearConv / QLinear kernels.
* ``nn.wq_conv`` / ``nn.wq_gemm``: int8/int4 weights -> DequantizeLinear of an int8 or
  uint8 initializer (per-channel or blocked, zero points as stored; int4 values are widened
  to one per byte), f16/bf16 -> Cast of a float16 initializer (bf16 widened to f32); with
  ``act_quant = "dynamic"``: DynamicQuantizeLinear + ConvInteger/MatMulInteger + Cast + Mul.
* float ops: conv, gemm, matmul, pools, unary activations, binary arithmetic, reshape,
  transpose, concat, softmax, layer norm, batch norm.

Anything else raises UnsupportedOpError naming the op. Numeric contract: the exported
model computes the same function as the module under ONNX semantics; onnxruntime's fused
integer kernels round the requantization once like ours, so outputs agree within one
quantization step (tests/frontends/onnx/test_onnx_export_qdq.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from nnc.errors import UnsupportedOpError
from nnc.ir import ops_compute as oc
from nnc.ir import ops_quant as oq
from nnc.ir import ops_shape as osh
from nnc.ir.builder import io_names, main_func
from nnc.ir.interpret_quant import decode_weight_array
from nnc.ir.nn_base import TensorSpec
from nnc.ir.ops_elementwise import BinaryOp, UnaryOp

OPSET = 21
_ELEM = {
    "f32": TensorProto.FLOAT,
    "u8": TensorProto.UINT8,
    "i8": TensorProto.INT8,
    "i32": TensorProto.INT32,
    "i64": TensorProto.INT64,
    "f16": TensorProto.FLOAT16,
}
_UNARY = {
    "relu": "Relu",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "exp": "Exp",
    "log": "Log",
    "sqrt": "Sqrt",
    "neg": "Neg",
    "abs": "Abs",
    "reciprocal": "Reciprocal",
    "erf": "Erf",
    "softplus": "Softplus",
    "hard_swish": "HardSwish",
    "gelu": "Gelu",
}
_BINARY = {
    "add": "Add",
    "sub": "Sub",
    "mul": "Mul",
    "div": "Div",
    "pow": "Pow",
    "max": "Max",
    "min": "Min",
}


class _Exporter:
    def __init__(self) -> None:
        self.names: dict[SSAValue, str] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.counter = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def const(self, array: np.ndarray, hint: str = "c") -> str:
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type: str, inputs: list[str], hint: str = "t", **attrs) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def name(self, v: SSAValue) -> str:
        """The ONNX name of ``v`` (constants become initializers on first use)."""
        if v not in self.names and isinstance(v.owner, oc.ConstantOp):
            arr = v.owner.prop("value").array
            if arr.dtype == np.uint16:  # bf16 bits: widened to float32
                arr = oq.bf16_decode(arr)
            self.names[v] = self.const(arr, "w")
        return self.names[v]

    # -- building blocks -----------------------------------------------------------------

    def q(self, x: str, scale, zp, dtype: str, axis: int = 1, block: int = 0) -> str:
        zp_arr = np.asarray(zp).astype({"u8": np.uint8, "i8": np.int8}[dtype])
        attrs = {"axis": axis} if np.asarray(scale).ndim else {}
        if block:
            attrs["block_size"] = block
        return self.node(
            "QuantizeLinear",
            [x, self.const(np.asarray(scale, np.float32), "s"), self.const(zp_arr, "zp")],
            "q",
            **attrs,
        )

    def dq(self, x: str, scale, zp, zp_dtype, axis: int = 1, block: int = 0) -> str:
        inputs = [x, self.const(np.asarray(scale, np.float32), "s")]
        if zp is not None:
            inputs.append(self.const(np.asarray(zp).astype(zp_dtype), "zp"))
        attrs = {"axis": axis} if np.asarray(scale).ndim else {}
        if block:
            attrs["block_size"] = block
        return self.node("DequantizeLinear", inputs, "dq", **attrs)

    def activation(self, x: str, kind: str, alpha: float, beta: float) -> str:
        if kind == "none":
            return x
        if kind == "clip":
            lo = self.const(np.array(alpha, np.float32), "lo")
            hi = self.const(np.array(beta, np.float32), "hi")
            return self.node("Clip", [x, lo, hi], "clip")
        if kind == "leaky_relu":
            return self.node("LeakyRelu", [x], "act", alpha=alpha)
        if kind == "hard_sigmoid":
            return self.node("HardSigmoid", [x], "act", alpha=alpha, beta=beta)
        if kind == "elu":
            return self.node("Elu", [x], "act", alpha=alpha)
        if kind == "gelu_tanh":
            return self.node("Gelu", [x], "act", approximate="tanh")
        if kind in _UNARY:
            return self.node(_UNARY[kind], [x], "act")
        raise UnsupportedOpError(f"cannot export activation '{kind}' to ONNX")

    def conv_attrs(self, op: Operation) -> dict:
        t, left, b, r = op.prop("pads")
        return {
            "strides": list(op.prop("strides")),
            "pads": [t, left, b, r],
            "dilations": list(op.prop("dilations")),
            "group": op.prop("group"),
        }

    def matmul_nk(self, x: str, w: str, x_rank: int, bias: str | None) -> str:
        """x (..., K) times w (N, K)^T (+ bias)."""
        if x_rank == 2:
            return self.node("Gemm", [x, w] + ([bias] if bias else []), "gemm", transB=1)
        wt = self.node("Transpose", [w], "wt", perm=[1, 0])
        y = self.node("MatMul", [x, wt], "mm")
        return self.node("Add", [y, bias], "add") if bias else y

    # -- ops -----------------------------------------------------------------------------

    def export_op(self, op: Operation) -> list[str]:
        for cls in type(op).__mro__:
            rule = _RULES.get(cls)
            if rule is not None:
                return rule(self, op)
        raise UnsupportedOpError(f"cannot export op '{op.name}' to ONNX")


def _ins(e: _Exporter, op: Operation) -> list[str]:
    return [e.name(v) for v in op.operands]


def _quantize(e, op):
    p = op.props_dict()
    return [
        e.q(
            e.name(op.x),
            p["scale"].array,
            p["zero_point"].array,
            p["dtype"],
            p["axis"],
            p["group_size"],
        )
    ]


def _dequantize(e, op):
    p = op.props_dict()
    zp_dtype = {"u8": np.uint8, "i8": np.int8, "i32": np.int32}[TensorSpec.of(op.x).dtype]
    return [
        e.dq(
            e.name(op.x),
            p["scale"].array,
            p["zero_point"].array,
            zp_dtype,
            p["axis"],
            p["group_size"],
        )
    ]


def _requantize(e, op):
    p = op.props_dict()
    zp_dtype = np.uint8 if TensorSpec.of(op.x).dtype == "u8" else np.int8
    f = e.dq(e.name(op.x), p["x_scale"], p["x_zp"], zp_dtype)
    return [e.q(f, p["y_scale"], p["y_zp"], p["dtype"])]


def _int_op(e, op):
    p = op.props_dict()
    x_dtype = TensorSpec.of(op.x).dtype
    xf = e.dq(e.name(op.x), p["x_scale"], p["x_zp"], np.uint8 if x_dtype == "u8" else np.int8)
    w_scale = p["w_scale"].array.astype(np.float32)
    wf = e.dq(e.name(op.w), w_scale, np.zeros(w_scale.shape, np.int8), np.int8, axis=0)
    bias = op.operand_named("bias")
    bf = None
    if bias is not None:
        unit = (np.float32(p["x_scale"]) * w_scale).astype(np.float32)
        bf = e.dq(e.name(bias), unit, np.zeros(unit.shape, np.int32), np.int32, axis=0)
    if isinstance(op, oq.QConvOp):
        y = e.node("Conv", [xf, wf] + ([bf] if bf else []), "conv", **e.conv_attrs(op))
    else:
        y = e.matmul_nk(xf, wf, TensorSpec.of(op.x).rank, bf)
    residual = op.operand_named("residual")
    if residual is not None:
        r_dtype = np.uint8 if TensorSpec.of(residual).dtype == "u8" else np.int8
        rf = e.dq(e.name(residual), p["r_scale"], p["r_zp"], r_dtype)
        y = e.node("Add", [y, rf], "add")
    y = e.activation(y, p["activation"], p["act_alpha"], p["act_beta"])
    return [e.q(y, p["y_scale"], p["y_zp"], p["out_dtype"])]


def _wq_op(e, op):
    p = op.props_dict()
    w_arr = op.operands[1].owner.prop("value").array
    storage, w_shape = p["storage"], tuple(p["w_shape"])
    n, k = oq.wq_rows(w_shape)
    bias = op.operand_named("bias")
    is_conv = isinstance(op, oq.WQConvOp)
    if p["act_quant"] == "dynamic":
        xq = e.fresh("xq")
        xs, xz = e.fresh("xs"), e.fresh("xz")
        e.nodes.append(helper.make_node("DynamicQuantizeLinear", [e.name(op.x)], [xq, xs, xz]))
        wq = e.const(w_arr.reshape(w_shape) if is_conv else np.ascontiguousarray(w_arr.T), "wq")
        if is_conv:
            acc = e.node("ConvInteger", [xq, wq, xz], "acc", **e.conv_attrs(op))
            scale_shape = (1, n, 1, 1)
        else:
            acc = e.node("MatMulInteger", [xq, wq, xz], "acc")
            scale_shape = (n,)
        accf = e.node("Cast", [acc], "accf", to=TensorProto.FLOAT)
        ws = e.const(p["scale"].array.astype(np.float32).reshape(scale_shape), "ws")
        s = e.node("Mul", [xs, ws], "s")
        y = e.node("Mul", [accf, s], "y")
        if bias is not None:
            b = e.name(bias)
            if is_conv:
                b = e.node("Reshape", [b, e.const(np.array([1, n, 1, 1], np.int64), "bs")], "b")
            y = e.node("Add", [y, b], "add")
    else:
        if storage in ("f16", "bf16"):
            wf = e.const(decode_weight_array(p, w_arr).reshape(n, k), "w")
        else:
            q = (
                oq.unpack_int4(w_arr, k, storage == "i4")
                if storage in ("i4", "u4")
                else w_arr.astype(np.int32)
            )
            q_dtype = np.uint8 if storage == "u4" else np.int8
            zp = p["zero_point"].array
            zp = np.zeros(p["scale"].array.shape, np.int32) if zp.size == 0 else zp
            scale = p["scale"].array.astype(np.float32)
            gs = p["group_size"]
            wq = e.const(q.astype(q_dtype), "wq")
            if gs:
                wf = e.dq(wq, scale, zp, q_dtype, axis=1, block=gs)
            else:
                wf = e.dq(wq, scale.reshape(-1), zp.reshape(-1), q_dtype, axis=0)
        b = None if bias is None else e.name(bias)
        if is_conv:
            w4 = e.node("Reshape", [wf, e.const(np.array(w_shape, np.int64), "ws")], "w4")
            y = e.node("Conv", [e.name(op.x), w4] + ([b] if b else []), "conv", **e.conv_attrs(op))
        else:
            y = e.matmul_nk(e.name(op.x), wf, TensorSpec.of(op.x).rank, b)
    residual = op.operand_named("residual")
    if residual is not None:
        y = e.node("Add", [y, e.name(residual)], "add")
    return [e.activation(y, p["activation"], p["act_alpha"], p["act_beta"])]


def _conv(e, op):
    ins = _ins(e, op)
    has_bias = op.operand_named("bias") is not None
    y = e.node("Conv", ins[: 3 if has_bias else 2], "conv", **e.conv_attrs(op))
    if op.operand_named("residual") is not None:
        y = e.node("Add", [y, ins[-1]], "add")
    return [e.activation(y, op.prop("activation"), op.prop("act_alpha"), op.prop("act_beta"))]


def _gemm(e, op):
    y = e.node(
        "Gemm",
        _ins(e, op),
        "gemm",
        transA=op.prop("trans_a"),
        transB=op.prop("trans_b"),
        alpha=op.prop("alpha"),
        beta=op.prop("beta"),
    )
    return [e.activation(y, op.prop("activation"), op.prop("act_alpha"), op.prop("act_beta"))]


def _pool(op_type):
    def rule(e, op):
        attrs = {
            "kernel_shape": list(op.prop("kernel")),
            "strides": list(op.prop("strides")),
            "pads": list(op.prop("pads")),
            "ceil_mode": op.prop("ceil_mode"),
        }
        if op_type == "AveragePool":
            attrs["count_include_pad"] = op.prop("count_include_pad")
        else:
            attrs["dilations"] = list(op.prop("dilations"))
        return [e.node(op_type, _ins(e, op), "pool", **attrs)]

    return rule


def _simple(op_type, **fixed):
    return lambda e, op: [e.node(op_type, _ins(e, op), "t", **fixed)]


def _unary(e, op):
    alpha, beta = op.act_params()
    return [e.activation(e.name(op.operands[0]), op.KIND, alpha, beta)]


def _binary(e, op):
    return [e.node(_BINARY[op.KIND], _ins(e, op), "t")]


def _reshape(e, op):
    shape = e.const(np.array(op.prop("shape"), np.int64), "shape")
    return [e.node("Reshape", [e.name(op.x), shape], "t")]


_RULES: dict[type, Callable[[_Exporter, Operation], list[str]]] = {
    oq.QuantizeOp: _quantize,
    oq.DequantizeOp: _dequantize,
    oq.RequantizeOp: _requantize,
    oq.QConvOp: _int_op,
    oq.QGemmOp: _int_op,
    oq.WQConvOp: _wq_op,
    oq.WQGemmOp: _wq_op,
    oc.ConvOp: _conv,
    oc.GemmOp: _gemm,
    oc.MatMulOp: _simple("MatMul"),
    oc.MaxPoolOp: _pool("MaxPool"),
    oc.AvgPoolOp: _pool("AveragePool"),
    oc.GlobalAvgPoolOp: _simple("GlobalAveragePool"),
    oc.GlobalMaxPoolOp: _simple("GlobalMaxPool"),
    UnaryOp: _unary,
    BinaryOp: _binary,
    osh.ReshapeOp: _reshape,
    osh.TransposeOp: lambda e, op: [
        e.node("Transpose", _ins(e, op), "t", perm=list(op.prop("perm")))
    ],
    osh.ConcatOp: lambda e, op: [e.node("Concat", _ins(e, op), "t", axis=op.prop("axis"))],
    osh.SoftmaxOp: lambda e, op: [e.node("Softmax", _ins(e, op), "t", axis=op.prop("axis"))],
    oc.LayerNormOp: lambda e, op: [
        e.node(
            "LayerNormalization", _ins(e, op), "t", axis=op.prop("axis"), epsilon=op.prop("epsilon")
        )
    ],
    oc.BatchNormOp: lambda e, op: [
        e.node("BatchNormalization", _ins(e, op), "t", epsilon=op.prop("epsilon"))
    ],
}


def export_qdq(module: ModuleOp) -> onnx.ModelProto:
    """The ONNX (opset 21) model computing ``module``'s main (see module docstring)."""
    fn = main_func(module)
    block = fn.body.blocks[0]
    in_names, out_names = io_names(module)
    e = _Exporter()
    graph_inputs = []
    for arg, name in zip(block.args, in_names):
        spec = TensorSpec.of(arg)
        e.names[arg] = name
        graph_inputs.append(helper.make_tensor_value_info(name, _ELEM[spec.dtype], spec.shape))
    outputs = []
    for op in block.ops:
        if isinstance(op, func.ReturnOp):
            for v, name in zip(op.operands, out_names):
                e.nodes.append(helper.make_node("Identity", [e.name(v)], [name]))
                spec = TensorSpec.of(v)
                outputs.append(helper.make_tensor_value_info(name, _ELEM[spec.dtype], spec.shape))
            break
        if isinstance(op, oc.ConstantOp):
            continue  # an initializer when (and if) an exported node reads it
        for v, n in zip(op.results, e.export_op(op)):
            e.names[v] = n
    graph = helper.make_graph(e.nodes, "nnc_qdq", graph_inputs, outputs, e.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nnc"
    )
    model.ir_version = 10
    return model


def save_qdq(module: ModuleOp, path: str | os.PathLike) -> None:
    """Write ``export_qdq(module)`` to ``path``."""
    onnx.save(export_qdq(module), os.fspath(path))
