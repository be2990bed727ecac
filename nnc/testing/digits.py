"""Trained digits models for compression tests: scikit-learn's 8x8 digits, numpy training.

Everything here is deterministic (fixed seeds, fixed split) and fast (a few seconds on
one core), so tests can train real models instead of checking random weights:

* ``load_digits_split()`` -> ``Split(x_train, y_train, x_test, y_test)``: pixels scaled
  to [0, 1], float32; 1347 train / 450 test images, a seeded permutation.
* ``train_mlp()`` -> ``TrainedModel``: MLP 64-300-100-10 (``Gemm(transB=1)+Relu`` x2,
  ``Gemm``), ~97% test accuracy.
* ``train_cnn()`` -> ``TrainedModel``: LeNet-style CNN on (N, 1, 8, 8):
  ``conv3x3(8) pad 1 - relu - conv3x3(16) stride 2 pad 1 - relu - flatten(256) -
  gemm(64) - relu - gemm(10)``, ~97% test accuracy.

``TrainedModel.onnx(batch)`` exports an ``onnx.ModelProto`` (opset 17, node names
``fc0``/``conv1``..., input ``input``, output ``logits``); ``batch=None`` gives a
symbolic batch dimension. ``accuracy(run_fn, x, y)`` is the fraction of argmax hits of
``run_fn(x) -> logits``. Results are cached per process (``functools.cache``).

Needs scikit-learn (the ``test`` extra).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass(frozen=True)
class Split:
    """Train/test arrays: x float32 in [0, 1], y int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@functools.cache
def load_digits_split(seed: int = 0, n_test: int = 450) -> Split:
    """scikit-learn's digits (1797 8x8 images), shuffled with ``seed``, last ``n_test`` test."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    return Split(x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:])


def accuracy(run_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose ``argmax(run_fn(x), axis=1)`` equals ``y``."""
    logits = np.asarray(run_fn(x))
    return float(np.mean(np.argmax(logits, axis=1) == y))


# -- layers (numpy forward/backward) ---------------------------------------------------


def _im2col(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """(N, C, H, W) -> (N, OH, OW, C*k*k) patches (C-major, like conv weights)."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, OH, OW, k, k)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, c * k * k)


def _col2im(cols: np.ndarray, x_shape, k: int, stride: int, pad: int) -> np.ndarray:
    """Adjoint of ``_im2col``: scatter-add patches back to (N, C, H, W)."""
    n, c, h, w = x_shape
    oh, ow = cols.shape[1:3]
    cols = cols.reshape(n, oh, ow, c, k, k)
    out = np.zeros((n, c, h + 2 * pad, w + 2 * pad), cols.dtype)
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += cols[
                :, :, :, :, i, j
            ].transpose(0, 3, 1, 2)
    return out[:, :, pad : pad + h, pad : pad + w]


@dataclass
class _Conv:
    w: np.ndarray  # (M, C, k, k)
    b: np.ndarray
    stride: int
    pad: int
    cache: tuple = field(default=(), repr=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        m, c, k, _ = self.w.shape
        cols = _im2col(x, k, self.stride, self.pad)
        self.cache = (x.shape, cols)
        y = cols @ self.w.reshape(m, -1).T + self.b  # (N, OH, OW, M)
        return y.transpose(0, 3, 1, 2)

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        m, c, k, _ = self.w.shape
        x_shape, cols = self.cache
        dyt = dy.transpose(0, 2, 3, 1)  # (N, OH, OW, M)
        dw = np.einsum("nhwm,nhwk->mk", dyt, cols).reshape(self.w.shape)
        db = dyt.sum(axis=(0, 1, 2))
        dx = _col2im(dyt @ self.w.reshape(m, -1), x_shape, k, self.stride, self.pad)
        return dx, [dw, db]

    def params(self) -> list[np.ndarray]:
        return [self.w, self.b]


@dataclass
class _Dense:
    w: np.ndarray  # (out, in): ONNX Gemm transB=1 layout
    b: np.ndarray
    cache: np.ndarray | None = field(default=None, repr=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.cache = x
        return x @ self.w.T + self.b

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        x = self.cache
        return dy @ self.w, [dy.T @ x, dy.sum(axis=0)]

    def params(self) -> list[np.ndarray]:
        return [self.w, self.b]


class _Relu:
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return dy * self.mask, []

    def params(self) -> list[np.ndarray]:
        return []


class _Flatten:
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return dy.reshape(self.shape), []

    def params(self) -> list[np.ndarray]:
        return []


def _train(
    layers: list,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float,
    seed: int,
    wd: float,
    batch: int = 32,
) -> None:
    """AdamW (decoupled weight decay ``wd`` on weights, not biases) on softmax
    cross-entropy, minibatches of ``batch``, in float32. Weight decay makes the trained weights
    compressible (small unused weights, fast-decaying spectra), as in Deep Compression."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # tiny matrices: BLAS threads only contend
        _train_loop(layers, x, y, epochs, lr, seed, wd, batch)


def _train_loop(layers, x, y, epochs, lr, seed, wd, batch) -> None:
    rng = np.random.default_rng(seed)
    params = [p for layer in layers for p in layer.params()]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            h = x[idx]
            for layer in layers:
                h = layer.forward(h)
            p = np.exp(h - h.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1
            grad = (p / len(idx)).astype(np.float32)
            grads: list[np.ndarray] = []
            for layer in reversed(layers):
                grad, g = layer.backward(grad)
                grads = g + grads
            t += 1
            for i, (param, g) in enumerate(zip(params, grads, strict=True)):
                m1[i] = b1 * m1[i] + (1 - b1) * g
                m2[i] = b2 * m2[i] + (1 - b2) * g * g
                step = lr * (m1[i] / (1 - b1**t)) / (np.sqrt(m2[i] / (1 - b2**t)) + eps)
                if param.ndim > 1:
                    step = step + lr * wd * param
                param -= step.astype(np.float32)


def _he(rng: np.random.Generator, shape, fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


# -- trained models ----------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedModel:
    """A trained digits model: its layers' weights and a way to export them to ONNX."""

    kind: str  # "mlp" or "cnn"
    weights: dict[str, np.ndarray]
    input_shape: tuple[int, ...]  # without the batch dimension
    test_accuracy: float

    def onnx(self, batch: int | None = None) -> onnx.ModelProto:
        """The model as ONNX (opset 17); ``batch=None`` makes the batch dim symbolic."""
        return _export(self, batch)

    def numpy_logits(self, x: np.ndarray) -> np.ndarray:
        """Reference forward pass in numpy (float32)."""
        layers = _layers_from(self)
        h = x.reshape((-1, *self.input_shape))
        for layer in layers:
            h = layer.forward(h)
        return h


def _mlp_layers(w: dict[str, np.ndarray]) -> list:
    return [
        _Dense(w["fc0.weight"], w["fc0.bias"]),
        _Relu(),
        _Dense(w["fc1.weight"], w["fc1.bias"]),
        _Relu(),
        _Dense(w["fc2.weight"], w["fc2.bias"]),
    ]


def _cnn_layers(w: dict[str, np.ndarray]) -> list:
    return [
        _Conv(w["conv1.weight"], w["conv1.bias"], 1, 1),
        _Relu(),
        _Conv(w["conv2.weight"], w["conv2.bias"], 2, 1),
        _Relu(),
        _Flatten(),
        _Dense(w["fc1.weight"], w["fc1.bias"]),
        _Relu(),
        _Dense(w["fc2.weight"], w["fc2.bias"]),
    ]


def _layers_from(model: TrainedModel) -> list:
    w = {k: v.copy() for k, v in model.weights.items()}
    return _mlp_layers(w) if model.kind == "mlp" else _cnn_layers(w)


@functools.cache
def train_mlp(seed: int = 0, epochs: int = 25, wd: float = 0.5, batch: int = 32) -> TrainedModel:
    """MLP 64-300-100-10 trained on the digits train split (a few seconds)."""
    rng = np.random.default_rng(seed)
    sizes = [(64, 300), (300, 100), (100, 10)]
    w: dict[str, np.ndarray] = {}
    for i, (fin, fout) in enumerate(sizes):
        w[f"fc{i}.weight"] = _he(rng, (fout, fin), fin)
        w[f"fc{i}.bias"] = np.zeros(fout, np.float32)
    split = load_digits_split()
    _train(_mlp_layers(w), split.x_train, split.y_train, epochs, 1e-3, seed, wd, batch)
    return _finish("mlp", w, (64,))


@functools.cache
def train_cnn(seed: int = 0, epochs: int = 20, wd: float = 0.2) -> TrainedModel:
    """LeNet-style CNN (see module docstring) trained on the digits train split."""
    rng = np.random.default_rng(seed)
    w = {
        "conv1.weight": _he(rng, (8, 1, 3, 3), 9),
        "conv1.bias": np.zeros(8, np.float32),
        "conv2.weight": _he(rng, (16, 8, 3, 3), 72),
        "conv2.bias": np.zeros(16, np.float32),
        "fc1.weight": _he(rng, (64, 256), 256),
        "fc1.bias": np.zeros(64, np.float32),
        "fc2.weight": _he(rng, (10, 64), 64),
        "fc2.bias": np.zeros(10, np.float32),
    }
    split = load_digits_split()
    x = split.x_train.reshape(-1, 1, 8, 8)
    _train(_cnn_layers(w), x, split.y_train, epochs, 2e-3, seed, wd)
    return _finish("cnn", w, (1, 8, 8))


def _finish(kind: str, w: dict[str, np.ndarray], input_shape) -> TrainedModel:
    frozen = {k: np.ascontiguousarray(v, np.float32) for k, v in w.items()}
    model = TrainedModel(kind, frozen, input_shape, 0.0)
    split = load_digits_split()
    acc = accuracy(model.numpy_logits, split.x_test.reshape((-1, *input_shape)), split.y_test)
    return TrainedModel(kind, frozen, input_shape, acc)


def _export(model: TrainedModel, batch: int | None) -> onnx.ModelProto:
    w = model.weights
    dim = batch if batch is not None else "N"
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes = []

    def gemm(x: str, name: str, relu: bool) -> str:
        nodes.append(
            helper.make_node(
                "Gemm", [x, f"{name}.weight", f"{name}.bias"], [name], name=name, transB=1
            )
        )
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    def conv(x: str, name: str, stride: int) -> str:
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.weight", f"{name}.bias"],
                [name],
                name=name,
                kernel_shape=[3, 3],
                strides=[stride, stride],
                pads=[1, 1, 1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [name], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    if model.kind == "mlp":
        gemm(gemm(gemm("input", "fc0", True), "fc1", True), "fc2", False)
    else:
        x = conv(conv("input", "conv1", 1), "conv2", 2)
        nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
        gemm(gemm("flat", "fc1", True), "fc2", False)
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        nodes,
        f"digits_{model.kind}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [dim, *model.input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dim, 10])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", 17)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="nnc.testing.digits")
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto)
    return proto
