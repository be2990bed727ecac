"""Native quantize / dequantize / requantize kernels (kernels/quant_convert.py) equal the
interpreter bit for bit, including rounding ties, clamping and per-channel parameters."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.backends.llvm import build, write_artifact
from nnc.errors import UnsupportedOpError
from nnc.ir import GraphBuilder
from nnc.ir.interpret import interpret
from nnc.ir.ops_quant import DequantizeOp, QuantizeOp, RequantizeOp
from nnc.runtime.library import NativeLibrary


def _p(s, z):
    return {"scale": np.asarray(s, np.float32), "zero_point": np.asarray(z, np.int32)}


@pytest.mark.parametrize("dtype", ["u8", "i8"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_convert_kernels_match_interpreter(tmp_path, dtype, per_channel):
    rng = np.random.default_rng(1)
    shape = (2, 3, 4, 5)
    if per_channel:
        s = np.array([0.5, 0.1, 0.03], np.float32)
        z = np.array([3, 0, 10], np.int32) if dtype == "u8" else np.zeros(3, np.int32)
    else:
        s, z = np.float32(0.25), np.int32(128 if dtype == "u8" else 0)
    b = GraphBuilder()
    x = b.add_input("x", shape)
    q = b.insert(QuantizeOp(x, dtype=dtype, axis=1, **_p(s, z)))
    r = b.insert(
        RequantizeOp(
            q, x_scale=float(np.max(s)), x_zp=int(np.max(z)), y_scale=0.07, y_zp=5, dtype="u8"
        )
    )
    y1 = b.insert(DequantizeOp(q, axis=1, **_p(s, z)))
    y2 = b.insert(DequantizeOp(r, **_p(0.07, 5)))
    module = b.finish([("a", y1), ("b", y2)])
    xin = (rng.standard_normal(shape) * 20).astype(np.float32)
    xin.reshape(-1)[:8] = [0.125, 0.375, -0.125, -0.375, 1e9, -1e9, 0.0, 2.5]  # ties, clamps
    so = write_artifact(build(module), tmp_path / "libq.so", "so")
    got = NativeLibrary(so, "nnc").run([xin])
    for g, w in zip(got, interpret(module, [xin]), strict=True):
        np.testing.assert_array_equal(g, w)


def test_per_group_parameters_are_a_clear_backend_error():
    b = GraphBuilder()
    x = b.add_input("x", (1, 4))
    q = b.insert(QuantizeOp(x, axis=1, group_size=2, **_p(np.ones((1, 2)), np.zeros((1, 2)))))
    module = b.finish([("y", b.insert(DequantizeOp(q, **_p(1.0, 0))))])
    with pytest.raises(UnsupportedOpError, match="per-group"):
        build(module)


@pytest.mark.parametrize("kind", ["gemm", "conv"])
def test_dynamic_layers_match_interpreter_bit_for_bit(tmp_path, kind):
    from nnc.ir.dialect import make_context
    from nnc.ir.ops_compute import ConvOp, GemmOp
    from nnc.passes.quantize import QuantizePass

    rng = np.random.default_rng(7)
    b = GraphBuilder()
    if kind == "gemm":
        x = b.add_input("x", (3, 20))
        w, c = rng.standard_normal((20, 6)).astype(np.float32), rng.standard_normal(6)
        y = b.insert(GemmOp(x, b.constant(w), b.constant(c.astype(np.float32)),
                            activation="relu"))  # fmt: skip
        xin = rng.standard_normal((3, 20)).astype(np.float32)
    else:
        x = b.add_input("x", (1, 4, 6, 5))
        w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
        r = b.add_input("r", (1, 6, 3, 2))
        y = b.insert(ConvOp(x, b.constant(w), None, r, strides=(2, 2), pads=(1, 1, 1, 0),
                            group=2, activation="clip", act_alpha=-1.0, act_beta=2.0))  # fmt: skip
        xin = [rng.standard_normal((1, 4, 6, 5)).astype(np.float32),
               rng.standard_normal((1, 6, 3, 2)).astype(np.float32)]  # fmt: skip
    module = b.finish([("y", y)])
    QuantizePass(mode="int8-dynamic").apply(make_context(), module)
    feeds = xin if isinstance(xin, list) else [xin]
    so = write_artifact(build(module), tmp_path / "libd.so", "so")
    got = NativeLibrary(so, "nnc").run(feeds)[0]
    np.testing.assert_array_equal(got, interpret(module, feeds)[0])
