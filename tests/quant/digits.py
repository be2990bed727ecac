"""A small CNN trained on scikit-learn's digits (8x8 images) with plain numpy, exported
to ONNX. Used by the accuracy and size tests of quantization.

    Conv 32@3x3 pad 1 -> Relu -> MaxPool 2 -> Conv 64@3x3 pad 1 -> Relu -> MaxPool 2
    -> Flatten (256) -> Gemm 128 -> Relu -> Gemm 10

(fan-ins of 288/256 keep per-channel scales and biases a small part of the weights, as
in real networks). Training: Adam, float32, minibatches of 64 on 1397 images, fixed seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BATCH = 20  # model batch: test set and calibration data are fed in chunks of 20


@dataclass
class Digits:
    model: onnx.ModelProto
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    params: dict[str, np.ndarray]


def _im2col(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, H, W, C*9) patches of a 3x3 pad-1 stride-1 conv."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=2)
    return cols.reshape(n, c * 9, h, w).transpose(0, 2, 3, 1)  # (c, i, j) order


def _col2im(d: np.ndarray, c: int) -> np.ndarray:
    """Adjoint of _im2col: (N, H, W, C*9) -> (N, C, H, W)."""
    n, h, w, _ = d.shape
    d = d.transpose(0, 3, 1, 2).reshape(n, c, 9, h, w)
    out = np.zeros((n, c, h + 2, w + 2), d.dtype)
    for k in range(9):
        i, j = divmod(k, 3)
        out[:, :, i : i + h, j : j + w] += d[:, :, k]
    return out[:, :, 1:-1, 1:-1]


def _conv(x, w, b):
    cols = _im2col(x)
    n, h, wd, k = cols.shape
    y = (cols.reshape(-1, k) @ w.reshape(w.shape[0], -1).T + b).reshape(n, h, wd, -1)
    return y.transpose(0, 3, 1, 2), cols


def _pool(x):
    n, c, h, w = x.shape
    r = x.reshape(n, c, h // 2, 2, w // 2, 2)
    y = r.max(axis=(3, 5))
    mask = r == y[:, :, :, None, :, None]
    return y, mask


def _unpool(d, mask):
    g = mask * d[:, :, :, None, :, None]
    n, c, h, _, w, _ = g.shape
    return g.reshape(n, c, h * 2, w * 2)


def forward(p, x, cache=None):
    h1, c1 = _conv(x, p["w1"], p["b1"])
    a1 = np.maximum(h1, 0)
    p1, m1 = _pool(a1)
    h2, c2 = _conv(p1, p["w2"], p["b2"])
    a2 = np.maximum(h2, 0)
    p2, m2 = _pool(a2)
    f = p2.reshape(len(x), -1)
    h3 = f @ p["w3"].T + p["b3"]
    a3 = np.maximum(h3, 0)
    logits = a3 @ p["w4"].T + p["b4"]
    if cache is not None:
        cache.update(locals())
    return logits


def _grads(p, x, y):
    c: dict = {}
    logits = forward(p, x, c)
    z = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    d = prob.copy()
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    g = {"w4": d.T @ c["a3"], "b4": d.sum(0)}
    d3 = (d @ p["w4"]) * (c["h3"] > 0)
    g.update(w3=d3.T @ c["f"], b3=d3.sum(0))
    dp2 = (d3 @ p["w3"]).reshape(c["p2"].shape)
    dh2 = _unpool(dp2, c["m2"]) * (c["h2"] > 0)  # (N, 32, 4, 4)
    dh2t = dh2.transpose(0, 2, 3, 1)
    g["w2"] = (dh2t.reshape(-1, 64).T @ c["c2"].reshape(-1, 288)).reshape(p["w2"].shape)
    g["b2"] = dh2t.sum((0, 1, 2))
    dcols = (dh2t.reshape(-1, 64) @ p["w2"].reshape(64, -1)).reshape(c["c2"].shape)
    dp1 = _col2im(dcols, 32)
    dh1 = _unpool(dp1, c["m1"]) * (c["h1"] > 0)
    dh1t = dh1.transpose(0, 2, 3, 1)
    g["w1"] = (dh1t.reshape(-1, 32).T @ c["c1"].reshape(-1, 9)).reshape(p["w1"].shape)
    g["b1"] = dh1t.sum((0, 1, 2))
    return g


def train(x, y, epochs: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    from threadpoolctl import threadpool_limits  # (a scikit-learn dependency)

    with threadpool_limits(1):  # small matrices: threads only add contention
        return _train(x, y, epochs, seed)


def _train(x, y, epochs: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32)

    p = {
        "w1": he((32, 1, 3, 3), 9),
        "b1": np.zeros(32, np.float32),
        "w2": he((64, 32, 3, 3), 288),
        "b2": np.zeros(64, np.float32),
        "w3": he((128, 256), 256),
        "b3": np.zeros(128, np.float32),
        "w4": he((10, 128), 128),
        "b4": np.zeros(10, np.float32),
    }
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    lr, b1, b2, t = 3e-3, 0.9, 0.999, 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            g = _grads(p, x[idx], y[idx])
            t += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                mh, vh = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
                p[k] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    return {k: val.astype(np.float32) for k, val in p.items()}


def to_onnx(p: dict[str, np.ndarray], batch: int = BATCH) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(v, k) for k, v in p.items()]
    inits.append(numpy_helper.from_array(np.array([batch, 256], np.int64), "flat_shape"))
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["h2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h2"], ["a2"]),
        helper.make_node("MaxPool", ["a2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p2", "flat_shape"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["h3"], transB=1),
        helper.make_node("Relu", ["h3"], ["a3"]),
        helper.make_node("Gemm", ["a3", "w4", "b4"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def make_digits(cache=None) -> Digits:
    """The data split and the trained model; ``cache`` (a .npz path) keeps the trained
    parameters between pytest-xdist workers and runs."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target
    rng = np.random.default_rng(1)
    order = rng.permutation(len(x))
    test, tr = order[:400], order[400:]
    if cache is not None and os.path.exists(cache):
        with np.load(cache) as f:
            p = {k: f[k] for k in f.files}
    else:
        p = train(x[tr], y[tr])
        if cache is not None:
            tmp = f"{cache}.{os.getpid()}.npz"
            np.savez(tmp, **p)
            os.replace(tmp, cache)
    return Digits(to_onnx(p), x[tr], y[tr], x[test], y[test], p)


def accuracy_of(run, x: np.ndarray, y: np.ndarray, batch: int = BATCH) -> float:
    """Percent correct of ``run(batch array) -> logits`` over (x, y) in chunks."""
    correct = 0
    for i in range(0, len(x), batch):
        logits = run(x[i : i + batch])
        correct += int((logits.argmax(axis=1) == y[i : i + batch]).sum())
    return 100.0 * correct / len(x)
