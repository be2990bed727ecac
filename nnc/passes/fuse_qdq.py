"""Fuse QDQ-format layers (imported quantized models) into integer ops.

Before (what a QuantizeLinear/DequantizeLinear model imports to; weights and biases were
dequantized at import, so they are float constants on the int8 grid)::

    %x = "nn.dequantize"(%xq) <{scale = s_x, zero_point = z_x}>
    %y = "nn.conv"(%x, %W, %b) <{activation = "none" | "relu" | "clip"}>
    %q = "nn.quantize"(%y) <{scale = s_y, zero_point = z_y, dtype = d}>

After::

    %q = "nn.qconv"(%xq, %Wq, %bq) <{x_scale = s_x, x_zp = z_x, w_scale = s_w, y_scale = s_y,
                                     y_zp = z_y, out_dtype = d, activation = ...}>

Gemm (``trans_a = 0``, bias broadcasting to (N,)) and matmul with a constant rank-2 right
operand become ``nn.qgemm``. The weight scales ``s_w[m]`` are recovered as the float32
value near ``max|W[m]| / 127`` for which ``f32(rint(W / s_w) * s_w) == W`` exactly (the
grid the weights were dequantized from); ``bq = rint(b / (s_x * s_w))``.

Preconditions (otherwise unchanged, with the reason in the report): per-tensor
activation parameters; the layer's only user is the quantize op; weights (and bias)
constant; the weights lie exactly on a symmetric int8 grid per output channel; the fused
activation is none/relu/clip; no residual.

Numeric contract: the float reference (dequantize -> float layer -> quantize) rounds the
exact float result once; the integer op rounds ``f32(acc) * mult`` once, so outputs
differ by at most one quantization step (the same as onnxruntime's own QLinearConv
against its QDQ reference), plus the bias rounding (half an accumulator unit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from nnc.ir.builder import main_func
from nnc.ir.ops_compute import ConstantOp, ConvOp, GemmOp, MatMulOp
from nnc.ir.ops_quant import INT_ACTIVATIONS, DequantizeOp, QConvOp, QGemmOp, QuantizeOp
from nnc.ir.types import dtype_of
from nnc.passes._common import Tally, constant_array, sole_user


def _per_tensor(op: Operation) -> tuple[float, int] | None:
    s, z = op.prop("scale").array, op.prop("zero_point").array
    if s.size != 1 or s.ndim > 1:
        return None
    return float(s.reshape(())), int(z.reshape(()))


def grid_scales(w2d: np.ndarray) -> np.ndarray | None:
    """Per-row float32 scales putting ``w2d`` exactly on a symmetric int8 grid, or None."""
    w = w2d.astype(np.float32)
    out = np.empty(len(w), np.float32)
    for m, row in enumerate(w):
        amax = np.float32(np.abs(row).max()) if row.size else np.float32(0)
        if amax == 0:
            out[m] = 1.0
            continue
        s0 = np.float32(amax / np.float32(127))
        cands, up, down = [s0], s0, s0
        for _ in range(3):  # the grid's scale is within a few ulps of max|w| / 127
            up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
            cands += [up, down]
        for s in cands:
            q = np.rint(row.astype(np.float64) / np.float64(s))
            if np.abs(q).max() <= 127 and np.array_equal((q.astype(np.float32) * s), row):
                out[m] = s
                break
        else:
            return None
    return out


@dataclass(frozen=True)
class FuseQDQPass(ModulePass):
    """Turn dequantize -> conv/gemm/matmul -> quantize into nn.qconv/nn.qgemm."""

    name = "fuse-qdq"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tally = Tally(self.name)
        block = main_func(op).body.blocks[0]
        for q in list(block.ops):
            if not isinstance(q, QuantizeOp) or q.parent is None:
                continue
            layer = q.x.owner
            if not isinstance(layer, ConvOp | GemmOp | MatMulOp):
                continue
            problem = self._fuse(q, layer)
            if problem:
                tally.decline(q, problem)
            else:
                tally.did(f"fused {layer.name} into an integer op")
        tally.record()

    def _fuse(self, q: QuantizeOp, layer: Operation) -> str | None:
        x = layer.operands[0]
        dq = x.owner
        if not isinstance(dq, DequantizeOp) or dtype_of(dq.x) not in ("i8", "u8"):
            return "input is not dequantized from i8/u8"
        px, py = _per_tensor(dq), _per_tensor(q)
        if px is None or py is None:
            return "activation parameters are not per-tensor"
        if sole_user(layer.results[0]) is not q:
            return "layer output has other users"
        act = "none" if isinstance(layer, MatMulOp) else layer.prop("activation")
        if act not in INT_ACTIVATIONS:
            return f"activation {act} cannot be fused"
        bias = None
        if isinstance(layer, ConvOp):
            if layer.operand_named("residual") is not None:
                return "conv has a residual"
            w = constant_array(layer.w)
            b_val = layer.operand_named("bias")
            bias = None if b_val is None else constant_array(b_val)
            if w is None or (b_val is not None and bias is None):
                return "weight or bias is not a constant"
            w2d = w.reshape(w.shape[0], -1)
        elif isinstance(layer, GemmOp):
            b = constant_array(layer.b)
            if b is None or layer.prop("trans_a") or layer.prop("alpha") != 1.0:
                return "gemm weight not constant, or trans_a/alpha"
            w2d = b if layer.prop("trans_b") else b.T
            c_val = layer.operand_named("c")
            if c_val is not None:
                c = constant_array(c_val)
                if c is None or c.size not in (1, w2d.shape[0]) or layer.prop("beta") != 1.0:
                    return "gemm bias is not a constant (N,) vector"
                bias = np.broadcast_to(c.reshape(-1), (w2d.shape[0],))
            w = w2d
        else:
            b = constant_array(layer.b)
            if b is None or b.ndim != 2:
                return "matmul right operand is not a constant matrix"
            w = w2d = b.T
        s_w = grid_scales(w2d)
        if s_w is None:
            return "weights are not on a symmetric int8 grid"
        wq = np.rint(w2d.astype(np.float64) / s_w[:, None]).astype(np.int8).reshape(w.shape)
        new: list[Operation] = [ConstantOp(value=np.ascontiguousarray(wq))]
        bias_v = None
        if bias is not None:
            unit = np.float64(np.float32(px[0]) * s_w.astype(np.float32))
            bq = np.clip(np.rint(bias.astype(np.float64) / unit), -(2**31), 2**31 - 1)
            new.append(ConstantOp(value=bq.astype(np.int32)))
            bias_v = new[-1].results[0]
        props = dict(
            x_scale=px[0],
            x_zp=px[1],
            w_scale=s_w,
            y_scale=py[0],
            y_zp=py[1],
            out_dtype=q.prop("dtype"),
            activation=act,
            act_alpha=0.0 if isinstance(layer, MatMulOp) else layer.prop("act_alpha"),
            act_beta=0.0 if isinstance(layer, MatMulOp) else layer.prop("act_beta"),
        )
        if isinstance(layer, ConvOp):
            geometry = {k: layer.prop(k) for k in ("strides", "pads", "dilations", "group")}
            fused = QConvOp(dq.x, new[0], bias_v, None, **geometry, **props)
        else:
            fused = QGemmOp(dq.x, new[0], bias_v, None, **props)
        if fused.results[0].type != q.results[0].type:
            return "result type would change"
        new.append(fused)
        block = q.parent_block()
        block.insert_ops_before(new, q)
        q.results[0].replace_all_uses_with(fused.results[0])
        operands = [*layer.operands]
        for dead in (q, layer):
            dead.detach()
            dead.erase()
        for v in operands:
            owner = v.owner
            if isinstance(owner, ConstantOp | DequantizeOp) and not v.uses:
                owner.detach()
                owner.erase()
        return None
