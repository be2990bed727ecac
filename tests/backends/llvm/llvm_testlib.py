"""Helpers for the LLVM backend tests: small nn models built with GraphBuilder (no ONNX
frontend needed) and ctypes calls into built libraries."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from nnc.ir import ops_compute as oc
from nnc.ir import ops_elementwise as oe
from nnc.ir import ops_shape as osh
from nnc.ir.builder import GraphBuilder
from nnc.ir.interpret import interpret

C_DRIVER = Path(__file__).with_name("test_c_abi.c")


class ModelBuilder(GraphBuilder):
    """GraphBuilder with seeded weights and a few layer helpers."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def weight(self, *shape: int, scale: float | None = None) -> SSAValue:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        s = scale if scale is not None else float(np.sqrt(2.0 / max(fan_in, 1)))
        return self.constant((self.rng.standard_normal(shape) * s).astype(np.float32))

    def conv(
        self,
        x: SSAValue,
        cout: int,
        k: int,
        stride: int = 1,
        *,
        act: str = "none",
        residual: SSAValue | None = None,
        group: int = 1,
    ) -> SSAValue:
        cin = x.type.get_shape()[1]
        w = self.weight(cout, cin // group, k, k)
        b = self.weight(cout, scale=0.1)
        p = k // 2
        return self.insert(
            oc.ConvOp(
                x,
                w,
                b,
                residual,
                strides=(stride, stride),
                pads=(p, p, p, p),
                group=group,
                activation=act,
            )
        )

    def dense(self, x: SSAValue, n: int, act: str = "none") -> SSAValue:
        k = x.type.get_shape()[1]
        return self.insert(
            oc.GemmOp(x, self.weight(n, k), self.weight(n, scale=0.1), trans_b=1, activation=act)
        )


def small_cnn(seed: int = 0, size: int = 16) -> ModuleOp:
    """conv+relu -> maxpool -> conv (unfused bias, relu op) -> global avg -> flatten -> gemm."""
    g = ModelBuilder(seed)
    x = g.add_input("image", (1, 3, size, size))
    y = g.conv(x, 8, 3, act="relu")
    y = g.insert(oc.MaxPoolOp(y, kernel=(2, 2), strides=(2, 2)))
    y = g.insert(oe.ReluOp(g.conv(y, 16, 3, stride=2)))
    y = g.insert(oc.GlobalAvgPoolOp(y))
    y = g.insert(osh.ReshapeOp(y, shape=(1, 16)))
    y = g.dense(y, 10)
    return g.finish([("logits", y)])


def mobile_block_model():
    """The conv kernel families of a MobileNet block: a stem with few output channels
    (direct kernel, row-band tasks), depthwise stride 2, pointwise convs (pixel tiles),
    a residual add, concat and a max pool."""
    g = ModelBuilder(4)
    x = g.add_input("x", (1, 3, 40, 36))
    y = g.conv(x, 16, 3, 2, act="clip")
    y = g.conv(y, 16, 3, 2, act="relu", group=16)
    e = g.conv(y, 48, 1, act="relu")
    y = g.conv(e, 16, 1, residual=y)
    y = g.insert(osh.ConcatOp(y, e, axis=1))
    y = g.insert(oc.MaxPoolOp(y, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)))
    return g.finish([("y", y)])


def resnet18(size: int = 224, classes: int = 1000, seed: int = 0) -> ModuleOp:
    """ResNet-18 with BN folded: convs carry bias, ReLU and the residual add fused."""
    g = ModelBuilder(seed)
    x = g.add_input("input", (1, 3, size, size))
    y = g.conv(x, 64, 7, 2, act="relu")
    y = g.insert(oc.MaxPoolOp(y, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)))
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            shortcut = y if s == 1 and cin == cout else g.conv(y, cout, 1, s)
            h = g.conv(y, cout, 3, s, act="relu")
            y = g.conv(h, cout, 3, 1, act="relu", residual=shortcut)
            cin = cout
    y = g.insert(oc.GlobalAvgPoolOp(y))
    y = g.insert(osh.ReshapeOp(y, shape=(1, 512)))
    return g.finish([("logits", g.dense(y, classes))])


def concat_residual(seed: int = 0) -> ModuleOp:
    """Two branches concatenated on channels, a 1x1 conv back, a residual add, relu."""
    g = ModelBuilder(seed)
    x = g.add_input("x", (1, 4, 8, 8))
    a = g.conv(x, 6, 3, act="relu")
    b = g.conv(x, 2, 1)
    y = g.insert(osh.ConcatOp(a, b, axis=1))
    y = g.conv(y, 4, 1)
    y = g.insert(oe.AddOp(y, x))
    return g.finish([("y", g.insert(oe.ReluOp(y)))])


def reshape_chain(seed: int = 0) -> ModuleOp:
    """reshape -> transpose -> reshape -> slice -> pad, plus a scaled second output."""
    g = ModelBuilder(seed)
    x = g.add_input("x", (2, 3, 4, 5))
    y = g.insert(oe.MulOp(x, g.weight(1, 3, 1, 1)))
    y = g.insert(osh.ReshapeOp(y, shape=(6, 20)))
    y = g.insert(osh.TransposeOp(y, perm=(1, 0)))
    y = g.insert(osh.ReshapeOp(y, shape=(4, 5, 6)))
    z = g.insert(osh.SliceOp(y, starts=(1, -1), ends=(4, 0), axes=(1, 2), steps=(1, -2)))
    z = g.insert(osh.PadOp(z, pads=(0, 1, 0, 0, 0, 2), mode="constant", value=0.5))
    flat = g.insert(osh.ReshapeOp(y, shape=(-1,)))
    return g.finish([("z", z), ("flat", flat)])


def transformer_head(seed: int = 0) -> ModuleOp:
    """layer_norm -> matmul -> gelu -> softmax over the last axis, reduce_mean output."""
    g = ModelBuilder(seed)
    x = g.add_input("tokens", (2, 5, 8))
    scale = g.constant(g.rng.uniform(0.5, 1.5, 8).astype(np.float32))
    bias = g.weight(8, scale=0.1)
    y = g.insert(oc.LayerNormOp(x, scale, bias, axis=-1, epsilon=1e-5))
    y = g.insert(oc.MatMulOp(y, g.weight(8, 6)))
    y = g.insert(oe.GeluOp(y))
    s = g.insert(osh.SoftmaxOp(y, axis=-1))
    m = g.insert(osh.ReduceMeanOp(y, axes=(1,), keepdims=0))
    return g.finish([("probs", s), ("mean", m)])


def unary_chain(n: int = 6, size: int = 4096) -> ModuleOp:
    """x -> (tanh, relu, neg, ...) n times: every intermediate is the same size."""
    g = ModelBuilder(0)
    y = g.add_input("x", (size,))
    kinds = (oe.TanhOp, oe.ReluOp, oe.NegOp, oe.AbsOp, oe.SigmoidOp)
    for i in range(n):
        y = g.insert(kinds[i % len(kinds)](y))
    return g.finish([("y", y)])


# -- running a built library with ctypes ------------------------------------------------


def load_so(path) -> ctypes.CDLL:
    """Load a model library (RTLD_LOCAL: models with equal prefixes do not interfere)."""
    return ctypes.CDLL(str(path))


def run_lib(
    lib: ctypes.CDLL,
    prefix: str,
    inputs: list[np.ndarray],
    out_shapes: list[tuple[int, ...]],
    workspace: np.ndarray | None = None,
):
    """Call ``prefix_run`` (or ``prefix_run_with_workspace``); returns (rc, outputs)."""
    inputs = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
    outs = [np.full(s, np.nan, dtype=np.float32) for s in out_shapes]
    in_arr = (ctypes.c_void_p * max(len(inputs), 1))(*[a.ctypes.data for a in inputs])
    out_arr = (ctypes.c_void_p * len(outs))(*[o.ctypes.data for o in outs])
    if workspace is None:
        fn = getattr(lib, f"{prefix}_run")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        rc = fn(in_arr, out_arr)
    else:
        fn = getattr(lib, f"{prefix}_run_with_workspace")
        fn.argtypes = [ctypes.c_void_p] * 3
        rc = fn(workspace.ctypes.data, in_arr, out_arr)
    return rc, outs


def write_io(module, result, folder: Path, seed: int = 1) -> tuple[Path, Path]:
    """inputs.bin / expected.bin (raw float32, model order) for test_c_abi.c."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s.shape).astype(np.float32) for s in result.inputs]
    expected = interpret(module, xs)
    ins, exp = folder / "inputs.bin", folder / "expected.bin"
    ins.write_bytes(b"".join(x.astype("<f4").tobytes() for x in xs))
    exp.write_bytes(b"".join(np.asarray(e, dtype="<f4").tobytes() for e in expected))
    return ins, exp
