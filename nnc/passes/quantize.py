"""Quantize: rewrite float conv/gemm/matmul layers with constant weights into quantized ops.

Weights are quantized here, at compile time (no quantize op is left on a weight).

Before::

    %y = "nn.conv"(%x, %w, %b) <{activation = "relu"}>            // f32

After, ``mode=int8`` (static; needs ranges from the ``calibrate`` pass)::

    %xq = "nn.quantize"(%x) <{scale = s_x, zero_point = z_x, dtype = "u8"}>
    %yq = "nn.qconv"(%xq, %wq, %bq) <{x_scale, x_zp, w_scale, y_scale, y_zp, activation}>
    %y  = "nn.dequantize"(%yq) <{scale = s_y, zero_point = z_y}>

with ``w_scale[m] = max|w[m]| / 127`` (per-channel; per-tensor: the max over all),
``wq = clamp(rint(w / w_scale[m]), -127, 127)``, ``bq = rint(b / (s_x * w_scale[m]))``
(int32), activation parameters from the calibrated ranges (u8 asymmetric by default,
s8 with zero point 0 when ``symmetric``). Gemm (``trans_a = 0``, bias broadcasting to
(N,)) and matmul with a constant rank-2 right operand become ``nn.qgemm``
(``w = alpha * op(B)^T``). A gemm/matmul with another fused activation (e.g. GELU from
``fuse-gelu``; no calibrated pre-activation range to requantize to) becomes int8-dynamic
(below: int8 weights, activation in float); such convs, and layers whose input or output
has no calibrated range, stay float. ``fold-qdq`` then removes the
``dequantize -> quantize`` pairs between consecutive integer layers. Without any ranges
(no calibration data) ``int8`` falls back to ``int8-dynamic`` and the report says so.

``mode=int8-dynamic``: ``nn.wq_conv``/``nn.wq_gemm`` with ``act_quant = "dynamic"``
(int8 symmetric per-channel weights; activations quantized per call).
``mode=int8-weight | int4-weight | fp16 | bf16``: ``nn.wq_*`` with ``act_quant="none"``
and ``storage`` i8 / i4 (symmetric) or u4 (asymmetric) / f16 / bf16. Granularity:
per-tensor, per-channel or per-group (``group-size`` consecutive weights of one output
channel along the reduction axis; weight-only int modes only).

Preconditions (otherwise the layer stays float and the report says why): conv/gemm/
matmul weight (and bias) are ``nn.constant``; f32; gemm without ``trans_a`` and with a
bias broadcasting to (N,); matmul with a rank-2 constant right operand; for int8 static,
calibrated ranges (``calibrate``) on the layer's input, output and residual, and a fused
activation among none/relu/clip (gemm without residual: any, via int8-dynamic).
Per-group granularity only for weight-only modes.
A layer with the discardable attribute ``nn.quant_mode`` (set by mixed precision) is
quantized only when it equals ``mode`` ("float": never).

Numeric contract (bounded error; what the tests check):

* each quantized weight differs from the float weight by at most half its scale
  (int modes), 2**-11 relative (fp16), 2**-8 relative (bf16);
* activations of static int8 layers differ by at most half their scale plus the
  propagated weight error; whole-model bounds per mode are in docs/quantization.md and
  checked on the model zoo in tests/quant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from nnc.errors import InvalidOptionError
from nnc.ir.builder import main_func
from nnc.ir.ops_compute import ConstantOp, ConvOp, GemmOp, MatMulOp
from nnc.ir.ops_quant import (
    INT_ACTIVATIONS,
    DequantizeOp,
    QConvOp,
    QGemmOp,
    QuantizeOp,
    WQConvOp,
    WQGemmOp,
)
from nnc.ir.types import dtype_of
from nnc.passes._common import Tally, constant_array
from nnc.passes.report import record
from nnc.quant.params import ActParams, act_params, encode_weight, weight_scales_int8
from nnc.quant.ranges import RANGE_ATTR, get_range, has_ranges

MODES = ("int8", "int8-dynamic", "int8-weight", "int4-weight", "fp16", "bf16")
GRANULARITIES = ("per-tensor", "per-channel", "per-group")
#: Discardable attributes on the new ops, read by the report.
SCHEME_ATTR, FP32_BYTES_ATTR, LAYER_ATTR = "nn.qscheme", "nn.fp32_bytes", "nn.layer_id"
#: Discardable per-layer choice (mixed precision): a float layer carrying it is quantized
#: only by a quantize run whose ``mode`` equals it ("float": by none).
MODE_ATTR = "nn.quant_mode"


@dataclass
class _Layer:
    """A float layer in normalised form: x, W (N, K) f32 or conv weight, bias (N,)."""

    op: Operation
    x: SSAValue
    w: np.ndarray  # conv: (M, C/g, KH, KW); gemm: (N, K)
    bias: np.ndarray | None
    residual: SSAValue | None
    is_conv: bool


def _as_layer(op: Operation) -> _Layer | str | None:
    """The layer view of ``op``, a reason it cannot be quantized, or None if not a layer."""
    if isinstance(op, ConvOp):
        w = constant_array(op.w)
        b = op.operand_named("bias")
        bias = None if b is None else constant_array(b)
        if w is None or (b is not None and bias is None):
            return "weight or bias is not a constant"
        if dtype_of(op.x) != "f32":
            return "not f32"
        return _Layer(op, op.x, w, bias, op.operand_named("residual"), True)
    if isinstance(op, GemmOp):
        b = constant_array(op.b)
        if b is None or op.prop("trans_a"):
            return "weight is not a constant (or trans_a)"
        w = (b if op.prop("trans_b") else b.T).astype(np.float64) * op.prop("alpha")
        c_val = op.operand_named("c")
        bias = None
        if c_val is not None:
            c = constant_array(c_val)
            n = w.shape[0]
            if c is None or c.size not in (1, n) or (c.ndim == 2 and c.shape[0] != 1):
                return "bias is not a constant broadcasting to (N,)"
            bias = np.broadcast_to(c.reshape(-1) * op.prop("beta"), (n,))
        return _Layer(op, op.a, w.astype(np.float32), bias, None, False)
    if isinstance(op, MatMulOp):
        b = constant_array(op.b)
        if b is None or b.ndim != 2:
            return None
        return _Layer(op, op.a, np.ascontiguousarray(b.T), None, None, False)
    return None


def layer_candidates(module: ModuleOp) -> list[Operation]:
    """The float layers of ``main`` this pass can quantize (in program order)."""
    ops = main_func(module).body.blocks[0].ops
    return [op for op in ops if isinstance(_as_layer(op), _Layer)]


def _conv_props(op: Operation) -> dict:
    return {k: op.prop(k) for k in ("strides", "pads", "dilations", "group")}


def _epilogue(op: Operation) -> dict:
    if isinstance(op, MatMulOp):
        return {"activation": "none", "act_alpha": 0.0, "act_beta": 0.0}
    return {k: op.prop(k) for k in ("activation", "act_alpha", "act_beta")}


@dataclass(frozen=True)
class QuantizePass(ModulePass):
    """Quantize weights (and activations, for int8) of conv/gemm/matmul layers."""

    name = "quantize"

    mode: str = "int8"
    """int8 (static), int8-dynamic, int8-weight, int4-weight, fp16 or bf16."""

    granularity: str = ""
    """Weight scales: per-tensor, per-channel or per-group ('' = per-group for int4,
    per-channel otherwise)."""

    group_size: int = 32
    """Weights per group along the reduction axis (per-group granularity)."""

    symmetric: bool = False
    """int8 activations s8 with zero point 0 (default: u8 with a zero point)."""

    weight_symmetric: bool = True
    """Weight-only int weights without zero points (false: i8/u4 with zero points)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidOptionError(
                f"{self.name}: unknown mode '{self.mode}' (choose from {', '.join(MODES)})"
            )
        if self.granularity not in ("", *GRANULARITIES):
            raise InvalidOptionError(
                f"{self.name}: unknown granularity '{self.granularity}' "
                f"(choose from {', '.join(GRANULARITIES)})"
            )
        if self.group_size < 1:
            raise InvalidOptionError(f"{self.name}: group-size must be >= 1")
        if self.effective_granularity == "per-group" and self.mode in ("int8", "int8-dynamic"):
            raise InvalidOptionError(
                f"{self.name}: per-group granularity needs a weight-only mode "
                "(int8-weight, int4-weight); integer ops use per-tensor or per-channel scales"
            )

    @property
    def effective_granularity(self) -> str:
        if self.granularity:
            return self.granularity
        return "per-group" if self.mode == "int4-weight" else "per-channel"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        mode = self.mode
        if mode == "int8" and not has_ranges(op):
            record(
                self.name,
                "warning: no calibration data: activations are quantized dynamically at run "
                "time (int8-dynamic)",
            )
            mode = "int8-dynamic"
        tally = Tally(self.name)
        block = main_func(op).body.blocks[0]
        object.__setattr__(self, "_quant_cache", {})  # per-run state of a frozen pass
        for index, layer_op in enumerate(list(block.ops)):
            layer = _as_layer(layer_op)
            if layer is None:
                continue
            wanted = layer_op.attributes.get(MODE_ATTR)
            if isinstance(wanted, StringAttr) and wanted.data != self.mode:
                continue  # mixed precision: another run's layer, or kept float
            if isinstance(layer, str):
                tally.decline(layer_op, layer)
                continue
            if LAYER_ATTR not in layer_op.attributes:
                layer_op.attributes[LAYER_ATTR] = IntegerAttr(index, i64)
            problem = self._static(layer) if mode == "int8" else self._weight_only(layer, mode)
            if problem:
                tally.decline(layer_op, problem)
            else:
                tally.did(f"{mode} {layer_op.name}")
        tally.record()

    # -- helpers -------------------------------------------------------------------------

    def _replace(self, layer: _Layer, new_ops: list[Operation], scheme: str) -> None:
        old = layer.op
        compute = next(o for o in new_ops if isinstance(o, QConvOp | QGemmOp | WQConvOp | WQGemmOp))
        fp32 = layer.w.size * 4 + (0 if layer.bias is None else layer.bias.size * 4)
        compute.attributes[SCHEME_ATTR] = StringAttr(scheme)
        compute.attributes[FP32_BYTES_ATTR] = IntegerAttr(fp32, i64)
        compute.attributes[LAYER_ATTR] = old.attributes[LAYER_ATTR]
        for key in ("nn.name", "onnx.name"):
            if key in old.attributes:
                compute.attributes[key] = old.attributes[key]
        if RANGE_ATTR in old.attributes:
            new_ops[-1].attributes[RANGE_ATTR] = old.attributes[RANGE_ATTR]
        block = old.parent_block()
        block.insert_ops_before(new_ops, old)
        operands = list(old.operands)
        old.results[0].replace_all_uses_with(new_ops[-1].results[0])
        old.detach()
        old.erase()
        for v in operands:  # weights the float layer no longer needs
            if isinstance(v.owner, ConstantOp) and not v.uses:
                v.owner.detach()
                v.owner.erase()

    def _quantized(self, value: SSAValue, p: ActParams, before: Operation) -> list[Operation]:
        """A quantize op for ``value`` (shared by every layer reading it with equal params)."""
        key = (value, p)
        if key in self._quant_cache:
            return []
        q = QuantizeOp(
            value,
            scale=np.array(p.scale, np.float32),
            zero_point=np.array(p.zp, np.int32),
            dtype=p.dtype,
        )
        self._quant_cache[key] = q
        return [q]

    def _static(self, layer: _Layer) -> str | None:
        op = layer.op
        epi = _epilogue(op)
        if epi["activation"] not in INT_ACTIVATIONS:
            if layer.is_conv or layer.residual is not None:
                return f"activation '{epi['activation']}' cannot be fused into an integer op"
            # e.g. gemm + gelu (fuse-gelu): no pre-activation range to requantize to, so
            # int8 weights with activations quantized per call, activation in float.
            return self._weight_only(layer, "int8-dynamic")
        rx, ry = get_range(layer.x), get_range(op.results[0])
        rr = None if layer.residual is None else get_range(layer.residual)
        if rx is None or ry is None or (layer.residual is not None and rr is None):
            return "no calibrated range for its input or output"
        xp, yp = act_params(*rx, self.symmetric), act_params(*ry, self.symmetric)
        n = layer.w.shape[0]
        w2d = layer.w.reshape(n, -1)
        per_channel = self.effective_granularity == "per-channel"
        ws = weight_scales_int8(w2d, per_channel)
        wq = np.clip(np.rint(w2d / ws[:, None].astype(np.float64)), -127, 127).astype(np.int8)
        new: list[Operation] = []
        new += self._quantized(layer.x, xp, op)
        xq = self._quant_cache[(layer.x, xp)].results[0]
        w_const = ConstantOp(value=wq.reshape(layer.w.shape))
        new.append(w_const)
        bias_const = None
        if layer.bias is not None:
            bq = np.rint(layer.bias.astype(np.float64) / (np.float64(xp.scale) * ws))
            bq = np.clip(bq, -(2**31), 2**31 - 1).astype(np.int32)
            bias_const = ConstantOp(value=bq)
            new.append(bias_const)
        rq, extra = None, {}
        if layer.residual is not None:
            rp = act_params(*rr, self.symmetric)
            new += self._quantized(layer.residual, rp, op)
            rq = self._quant_cache[(layer.residual, rp)].results[0]
            extra = {"r_scale": rp.scale, "r_zp": rp.zp}
        props = dict(
            x_scale=xp.scale,
            x_zp=xp.zp,
            w_scale=ws,
            y_scale=yp.scale,
            y_zp=yp.zp,
            out_dtype=yp.dtype,
            **epi,
            **extra,
        )
        bias_v = None if bias_const is None else bias_const.results[0]
        if layer.is_conv:
            compute = QConvOp(xq, w_const, bias_v, rq, **_conv_props(op), **props)
        else:
            compute = QGemmOp(xq, w_const, bias_v, rq, **props)
        dq = DequantizeOp(
            compute, scale=np.array(yp.scale, np.float32), zero_point=np.array(yp.zp, np.int32)
        )
        if dq.results[0].type != op.results[0].type:
            return "result type would change"
        new += [compute, dq]
        gran = "per-channel" if per_channel else "per-tensor"
        self._replace(layer, new, f"int8 static {gran} w8a8 ({yp.dtype} act)")
        return None

    def _weight_only(self, layer: _Layer, mode: str) -> str | None:
        op = layer.op
        storage = {
            "int8-dynamic": "i8",
            "int8-weight": "i8",
            "int4-weight": "i4" if self.weight_symmetric else "u4",
            "fp16": "f16",
            "bf16": "bf16",
        }[mode]
        gran = self.effective_granularity
        n = layer.w.shape[0]
        w2d = layer.w.reshape(n, -1).astype(np.float32)
        dynamic = mode == "int8-dynamic"
        symmetric = dynamic or self.weight_symmetric
        group = self.group_size if gran == "per-group" and storage not in ("f16", "bf16") else 0
        stored, scale, zp = encode_weight(w2d, storage, group, symmetric, gran == "per-tensor")
        new: list[Operation] = []
        w_const = ConstantOp(value=stored)
        new.append(w_const)
        bias_v = None
        if layer.bias is not None:
            bias_const = ConstantOp(value=np.ascontiguousarray(layer.bias, np.float32))
            new.append(bias_const)
            bias_v = bias_const.results[0]
        props = dict(
            w_shape=tuple(layer.w.shape),
            storage=storage,
            scale=scale,
            zero_point=zp,
            group_size=group,
            act_quant="dynamic" if dynamic else "none",
            **_epilogue(op),
        )
        if layer.is_conv:
            compute = WQConvOp(layer.x, w_const, bias_v, layer.residual, **_conv_props(op), **props)
        else:
            compute = WQGemmOp(layer.x, w_const, bias_v, None, **props)
        if compute.results[0].type != op.results[0].type:
            return "result type would change"
        new.append(compute)
        if dynamic:
            scheme = f"int8 dynamic {gran} w8a8"
        elif storage in ("f16", "bf16"):
            scheme = f"{storage} weights"
        else:
            sym = "sym" if zp.size == 0 else "asym"
            where = f"group {group}" if group else gran
            scheme = f"{storage} weight-only {where} {sym}"
        self._replace(layer, new, scheme)
        return None
