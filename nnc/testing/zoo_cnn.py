"""Seeded MLP / CNN builders: MLP, LeNet-5, ResNet-18 and MobileNetV2.

Every builder returns a checked, shape-inferred ``onnx.ModelProto`` with one float32
graph input ``input`` and one output ``logits``. Weights are He/Kaiming-initialised from
``np.random.default_rng(seed)``; BatchNormalization layers carry random (non-identity)
running statistics and affine parameters so BN folding is exercised for real.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from nnc.testing._builder import GraphBuilder, make_checked_model


def check_opset(model: str, opset: int, minimum: int, why: str) -> None:
    """Raise ``ValueError`` if ``opset`` is below the ``minimum`` the model needs."""
    if opset < minimum:
        raise ValueError(f"{model} needs opset >= {minimum} ({why}); got opset {opset}")


def mlp(
    in_features: int = 64,
    hidden: Sequence[int] = (300, 100),
    classes: int = 10,
    batch: int = 1,
    *,
    opset: int = 17,
    seed: int = 0,
) -> onnx.ModelProto:
    """A multilayer perceptron ``input (batch, in_features) -> logits (batch, classes)``.

    One ``Gemm(transB=1) + Relu`` per entry of ``hidden`` (named ``fc{i}``), then a final
    ``Gemm`` classifier without activation.
    """
    check_opset("mlp", opset, 9, "Gemm with optional broadcasting")
    b = GraphBuilder(seed)
    x, fin = "input", in_features
    for i, h in enumerate(hidden):
        x = b.relu(b.gemm(x, f"fc{i}", fin, h), f"relu{i}")
        fin = h
    out = b.gemm(x, f"fc{len(hidden)}", fin, classes, gain=1.0)
    b.rename(out, "logits")
    graph = b.graph("mlp", [("input", (batch, in_features))], [("logits", (batch, classes))])
    return make_checked_model(graph, opset)


def lenet(batch: int = 1, *, classes: int = 10, opset: int = 17, seed: int = 0) -> onnx.ModelProto:
    """LeNet-5 on MNIST-sized images: ``input (batch, 1, 28, 28) -> logits (batch, classes)``.

    ``Conv 6@5x5 pad 2 -> Relu -> MaxPool 2 -> Conv 16@5x5 -> Relu -> MaxPool 2 ->
    Reshape (batch, 400) -> Gemm 120 -> Relu -> Gemm 84 -> Relu -> Gemm classes``
    (convs have biases; the Reshape uses a ``[-1, 400]`` shape constant, as ``x.view``
    exports do).
    """
    check_opset("lenet", opset, 9, "Reshape with a shape input")
    b = GraphBuilder(seed)
    x = b.relu(b.conv("input", "conv1", 1, 6, 5, pad=2), "relu1")
    x = b.node("MaxPool", [x], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    x = b.relu(b.conv(x, "conv2", 6, 16, 5, pad=0), "relu2")
    x = b.node("MaxPool", [x], "pool2", kernel_shape=[2, 2], strides=[2, 2])
    shape = b.const("flatten_shape", np.array([-1, 16 * 5 * 5], dtype=np.int64))
    x = b.node("Reshape", [x, shape], "flatten")
    x = b.relu(b.gemm(x, "fc1", 400, 120), "relu3")
    x = b.relu(b.gemm(x, "fc2", 120, 84), "relu4")
    out = b.gemm(x, "fc3", 84, classes, gain=1.0)
    b.rename(out, "logits")
    graph = b.graph("lenet", [("input", (batch, 1, 28, 28))], [("logits", (batch, classes))])
    return make_checked_model(graph, opset)


def _conv_bn(
    b: GraphBuilder,
    x: str,
    name: str,
    bn_name: str,
    cin: int,
    cout: int,
    kernel: int,
    *,
    stride: int = 1,
    group: int = 1,
    gain: float = 2.0,
    gamma: tuple[float, float] = (0.6, 1.4),
) -> str:
    y = b.conv(x, name, cin, cout, kernel, stride=stride, group=group, bias=False, gain=gain)
    return b.batchnorm(y, bn_name, cout, gamma=gamma)


def _basic_block(b: GraphBuilder, x: str, name: str, cin: int, cout: int, stride: int) -> str:
    """torchvision BasicBlock: conv3x3-bn-relu-conv3x3-bn (+ 1x1 downsample) -> Add -> Relu."""
    y = _conv_bn(b, x, f"{name}.conv1", f"{name}.bn1", cin, cout, 3, stride=stride)
    y = b.relu(y, f"{name}.relu1")
    # The residual branch's last BN gets a smaller scale (as trained ResNets do) so the
    # sum over the residual stream does not blow up with depth.
    y = _conv_bn(b, y, f"{name}.conv2", f"{name}.bn2", cout, cout, 3, gamma=(0.3, 0.7))
    if stride != 1 or cin != cout:
        x = _conv_bn(
            b,
            x,
            f"{name}.downsample.0",
            f"{name}.downsample.1",
            cin,
            cout,
            1,
            stride=stride,
            gain=1.0,
        )
    return b.relu(b.node("Add", [y, x], f"{name}.add"), f"{name}.relu2")


def resnet18(
    image_size: int = 224,
    classes: int | None = None,
    batch: int = 1,
    *,
    stem: str = "auto",
    opset: int = 17,
    seed: int = 0,
) -> onnx.ModelProto:
    """torchvision ResNet-18: ``input (batch, 3, S, S) -> logits (batch, classes)``.

    Conv layers have no bias and are each followed by ``BatchNormalization``; blocks are
    torchvision ``BasicBlock`` s ([2, 2, 2, 2] of 64/128/256/512 channels, strides
    1/2/2/2, 1x1-conv+BN downsample shortcuts) with residual ``Add``; then
    ``GlobalAveragePool -> Flatten -> Gemm``.

    ``stem="imagenet"`` is the 7x7/2 Conv + BN + Relu + 3x3/2 MaxPool stem;
    ``stem="cifar"`` is a 3x3/1 Conv + BN + Relu stem without MaxPool. ``"auto"`` picks
    ``"cifar"`` when ``image_size <= 32``. ``classes`` defaults to 10 for the CIFAR stem
    and 1000 otherwise. Node/weight names follow the torchvision state dict
    (``layer2.0.bn1.running_mean`` ...).
    """
    check_opset("resnet18", opset, 9, "BatchNormalization without 'spatial'")
    if stem == "auto":
        stem = "cifar" if image_size <= 32 else "imagenet"
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be 'auto', 'imagenet' or 'cifar', got {stem!r}")
    if classes is None:
        classes = 10 if stem == "cifar" else 1000
    b = GraphBuilder(seed)
    if stem == "imagenet":
        x = b.relu(_conv_bn(b, "input", "conv1", "bn1", 3, 64, 7, stride=2), "relu")
        x = b.node(
            "MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
        )
    else:
        x = b.relu(_conv_bn(b, "input", "conv1", "bn1", 3, 64, 3), "relu")
    cin = 64
    for stage, (cout, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
        for i in range(2):
            x = _basic_block(b, x, f"layer{stage}.{i}", cin, cout, stride if i == 0 else 1)
            cin = cout
    x = b.node("GlobalAveragePool", [x], "avgpool")
    x = b.node("Flatten", [x], "flatten", axis=1)
    out = b.gemm(x, "fc", 512, classes, gain=1.0)
    b.rename(out, "logits")
    graph = b.graph(
        f"resnet18_{stem}",
        [("input", (batch, 3, image_size, image_size))],
        [("logits", (batch, classes))],
    )
    return make_checked_model(graph, opset)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding for width multipliers."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# (expand ratio t, output channels c, repeats n, first stride s), as in the paper.
_MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenet_v2(
    image_size: int = 224,
    classes: int = 1000,
    batch: int = 1,
    *,
    width_mult: float = 1.0,
    opset: int = 17,
    seed: int = 0,
) -> onnx.ModelProto:
    """torchvision MobileNetV2: ``input (batch, 3, S, S) -> logits (batch, classes)``.

    Stem ``Conv 32@3x3/2 + BN + ReLU6``, then 17 inverted-residual blocks
    (``1x1 expand Conv+BN+ReLU6`` unless t=1, ``3x3 depthwise Conv (group=C)+BN+ReLU6``,
    ``1x1 linear project Conv+BN``, residual ``Add`` when stride 1 and channels match),
    ``1x1 Conv 1280 + BN + ReLU6``, ``GlobalAveragePool -> Flatten -> Gemm``. Convs have
    no bias. ReLU6 is ``Clip(x, min=0, max=6)`` with min/max as (shared) scalar
    initializer inputs, hence opset >= 11.
    """
    check_opset("mobilenet_v2", opset, 11, "Clip takes min/max as inputs")
    b = GraphBuilder(seed)
    lo = b.const("relu6.min", np.array(0.0, dtype=np.float32))
    hi = b.const("relu6.max", np.array(6.0, dtype=np.float32))

    def relu6(x: str, name: str) -> str:
        return b.node("Clip", [x, lo, hi], name)

    cin = _make_divisible(32 * width_mult)
    x = relu6(
        _conv_bn(b, "input", "features.0.0", "features.0.1", 3, cin, 3, stride=2), "features.0.2"
    )
    idx = 1
    for t, c, n, s in _MOBILENET_V2_SETTINGS:
        cout = _make_divisible(c * width_mult)
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{idx}.conv"
            hidden = cin * t
            y, j = x, 0
            if t != 1:
                y = _conv_bn(b, y, f"{p}.{j}.0", f"{p}.{j}.1", cin, hidden, 1)
                y = relu6(y, f"{p}.{j}.2")
                j += 1
            y = _conv_bn(
                b, y, f"{p}.{j}.0", f"{p}.{j}.1", hidden, hidden, 3, stride=stride, group=hidden
            )
            y = relu6(y, f"{p}.{j}.2")
            use_res = stride == 1 and cin == cout
            y = _conv_bn(
                b,
                y,
                f"{p}.{j + 1}",
                f"{p}.{j + 2}",
                hidden,
                cout,
                1,
                gain=1.0,
                gamma=(0.3, 0.7) if use_res else (0.6, 1.4),
            )
            x = b.node("Add", [x, y], f"features.{idx}.add") if use_res else y
            cin = cout
            idx += 1
    last = _make_divisible(1280 * max(1.0, width_mult))
    x = relu6(
        _conv_bn(b, x, f"features.{idx}.0", f"features.{idx}.1", cin, last, 1), f"features.{idx}.2"
    )
    x = b.node("GlobalAveragePool", [x], "avgpool")
    x = b.node("Flatten", [x], "flatten", axis=1)
    out = b.gemm(x, "classifier.1", last, classes, gain=1.0)
    b.rename(out, "logits")
    graph = b.graph(
        "mobilenet_v2",
        [("input", (batch, 3, image_size, image_size))],
        [("logits", (batch, classes))],
    )
    return make_checked_model(graph, opset)
