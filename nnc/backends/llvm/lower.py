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

from nnc.backends.llvm.program import Buffer, IOSpec, KernelSpec, LoweredModel, Step
from nnc.errors import NNCError, UnsupportedOpError
from nnc.ir import ops_compute as oc
from nnc.ir import ops_shape as osh
from nnc.ir.builder import io_names, main_func, return_op
from nnc.ir.nn_base import NNOp, TensorSpec
from nnc.ir.ops_elementwise import BinaryOp, UnaryOp
from nnc.ir.types import DYNAMIC, dtype_of_numpy, numpy_dtype
from nnc.ir.weights import WeightAttr

#: Emitter name -> (module under nnc.backends.llvm.kernels, function name).
EMITTERS: dict[str, tuple[str, str]] = {
    "conv2d": ("conv2d", "emit_conv2d"),
    "gemm": ("gemm", "emit_gemm"),
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


def _conv(op: oc.ConvOp) -> KernelSpec:
    return KernelSpec.make(
        "conv2d",
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
    return KernelSpec.make(
        "max_pool2d",
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


#: nn op class -> kernel spec builder. Looked up along the MRO (UnaryOp, BinaryOp...).
RULES: dict[type, Rule] = {
    oc.ConvOp: _conv,
    oc.GemmOp: _gemm,
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
        for op in self.ops:
            if id(op) in live:
                self.lower_op(op)
        self.bind_outputs()
        return self.model

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
        kernel = kernel_spec_for(op)
        ins = [self.buffers[v] for v in op.operands]
        outs = []
        for r in op.results:
            spec = TensorSpec.of(r)
            outs.append(Buffer("temp", _nbytes(spec), spec.dtype, label=op.name))
            self.buffers[r] = outs[-1]
        for buf in (*ins, *outs):
            if buf.dtype != "f32":
                raise UnsupportedOpError(
                    f"op {where}: the LLVM backend supports float32 tensors only, got {buf.dtype}"
                )
        self.model.steps.append(Step(kernel, ins, outs, op.name))

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
            self.model.steps.append(Step(KernelSpec.make("copy", size=size), [src], [dst], "copy"))


def lower_module(module: ModuleOp) -> LoweredModel:
    """Lower ``main`` of ``module`` to kernel steps (see the module docstring).

    Raises NNCError for dynamic shapes and UnsupportedOpError for ops or dtypes the
    backend cannot compile.
    """
    return _Lowering(module).run()
