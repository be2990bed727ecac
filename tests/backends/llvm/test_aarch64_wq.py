"""Weight-only and dynamic int8 kernels cross-built for aarch64-linux-gnu, linked with the
cross gcc and run under qemu-aarch64 (test_c_abi.c: two runs, against the interpreter).

The model covers every weight-only conv path of kernels/wq_conv.py / wq_cache.py:
decode-once + float32 direct (20x20 plane), decode-once + Winograd F(4x4) (64 channels
on 20x20: the auto cost rule picks it), per-tile decode via im2col + ``wq_gemm`` (3x3
plane, u4 with zero points); then int4 per-group ``wq_gemm`` (decode in registers) and,
on a second input, an int8-dynamic gemm (kernels/dyn_qgemm.py; NEON widening and sdot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_aarch64 import _run_under_qemu
from test_kernels_wq import stored_weight

from nnc.backends.llvm.kernels.conv_shape import ConvShape
from nnc.backends.llvm.kernels.wq_cache import cache_algo
from nnc.ir import GraphBuilder
from nnc.ir import ops_compute as oc
from nnc.ir import ops_shape as osh
from nnc.ir.ops_quant import WQConvOp, WQGemmOp


def _wq_model(convs: bool = True):
    rng = np.random.default_rng(11)
    b = GraphBuilder()
    x = b.add_input("x", (1, 8, 20, 20) if convs else (1, 8, 2, 2))
    v = b.add_input("v", (2, 40))

    def conv(y, cin, m, stride, storage="i4", asym=False, act="relu", residual=None):
        w, p = stored_weight(rng, storage, m, cin * 9, 32, asym)
        bias = b.constant(rng.standard_normal(m).astype(np.float32) * 0.1)
        return b.insert(WQConvOp(y, b.constant(w), bias, residual, w_shape=(m, cin, 3, 3),
                                 storage=storage, group_size=32, strides=(stride, stride),
                                 pads=(1, 1, 1, 1), activation=act, **p))  # fmt: skip

    if convs:
        y = conv(x, 8, 64, 1)  # decode once, direct
        y = conv(y, 64, 64, 1, residual=y)  # decode once, Winograd F(4x4)
        y = conv(y, 64, 32, 8, storage="u4", asym=True, act="none")  # 3x3 plane: per tile
    else:
        y = conv(x, 8, 32, 1, act="none")  # 2x2 plane: per tile (im2col + wq_gemm)
    y = b.insert(oc.GlobalAvgPoolOp(y))
    y = b.insert(osh.ReshapeOp(y, shape=(1, 32)))
    w, p = stored_weight(rng, "i4", 40, 32, 16, False)
    y = b.insert(WQGemmOp(y, b.constant(w), None, None, w_shape=(40, 32), storage="i4",
                          group_size=16, activation="relu", **p))  # fmt: skip
    wq = rng.integers(-127, 128, (10, 40)).astype(np.int8)
    scale = (rng.random((10, 1)) * 0.05 + 1e-3).astype(np.float32)
    bias = b.constant(rng.standard_normal(10).astype(np.float32))
    z = b.insert(WQGemmOp(v, b.constant(wq), bias, None, w_shape=(10, 40), scale=scale,
                          act_quant="dynamic", storage="i8"))  # fmt: skip
    return b.finish([("y", y), ("z", z)])


def test_model_paths_are_the_intended_ones():
    """The shapes above select the paths the module docstring names (host independent)."""
    pick = [
        cache_algo(ConvShape.checked(xs, ws, (s, s), (1, 1, 1, 1), (1, 1), 1))
        for xs, ws, s in [
            ((1, 8, 20, 20), (64, 8, 3, 3), 1),
            ((1, 64, 20, 20), (64, 64, 3, 3), 1),
            ((1, 64, 20, 20), (32, 64, 3, 3), 8),
        ]
    ]
    assert pick == ["direct", "winograd4", None]


@pytest.mark.parametrize("mcpu", [None, "cortex-a76+dotprod"])
def test_wq_and_dynamic_kernels_under_qemu(tmp_path: Path, mcpu):
    """NEON (cortex-a57) with every conv path; the dotprod build (``sdot`` dynamic gemm,
    run on ``-cpu max``) with the gemms and a small conv only, to stay fast."""
    _run_under_qemu(tmp_path, _wq_model(convs=mcpu is None), mcpu)
