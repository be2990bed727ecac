"""Measure where the CSR kernel (``nn.sparse_gemm``) beats the dense gemm / 1x1 conv.

    python tools/sparse_breakeven.py [--threads 1]

For a batch-1 gemm (N x K) and a 1x1 conv (C -> M over H x W pixels), prunes random
weights to each sparsity, compiles the dense and the sparse version with the JIT
(``nnc.compile``) and prints the median latency of each (and checks they agree). The
``sparse-kernels`` pass's default thresholds come from this table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import nnc


def _model(kind: str, rng: np.random.Generator, sparsity: float):
    if kind == "gemm":
        n, k = 1024, 1024
        w = rng.standard_normal((n, k)).astype(np.float32)
        x_shape, y_shape = [1, k], [1, n]
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
        bias = np.zeros(n, np.float32)
    else:
        m, c, hw = 256, 256, 14
        w = rng.standard_normal((m, c, 1, 1)).astype(np.float32)
        x_shape, y_shape = [1, c, hw, hw], [1, m, hw, hw]
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[1, 1])
        bias = np.zeros(m, np.float32)
    flat = np.abs(w).reshape(-1)
    w.reshape(-1)[np.argsort(flat)[: int(sparsity * flat.size)]] = 0
    graph = helper.make_graph(
        [node],
        kind,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, rng.standard_normal(x_shape).astype(np.float32)


def _median_ms(m, x, reps: int = 30) -> float:
    m.run([x])
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        m.run([x])
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| layer | sparsity | dense ms | sparse ms | sparse/dense |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("gemm", "conv1x1"):
        for sparsity in (0.5, 0.7, 0.8, 0.9, 0.95):
            model, x = _model(kind, rng, sparsity)
            dense = nnc.compile(model, threads=args.threads)
            sparse = nnc.compile(
                model,
                threads=args.threads,
                passes="sparse-kernels{min-sparsity-gemm=0.0 min-sparsity-conv=0.0 max-rows=64}",
            )
            a, b = dense.run([x])[0], sparse.run([x])[0]
            assert np.allclose(a, b, rtol=1e-4, atol=1e-3), np.abs(a - b).max()
            td, ts = _median_ms(dense, x), _median_ms(sparse, x)
            print(f"| {kind} | {sparsity:.2f} | {td:.3f} | {ts:.3f} | {ts / td:.2f} |")


if __name__ == "__main__":
    main()
