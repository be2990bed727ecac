"""The model zoo: seeded ONNX models for tests, benchmarks and demos, plus helpers.

No model hub is needed: every model is built with ``onnx.helper`` + numpy from
``np.random.default_rng(seed)`` (see ``zoo_cnn`` and ``zoo_transformer``). Besides the
builders this module provides:

* ``ZOO`` -- name -> builder registry (``mlp``, ``lenet``, ``resnet18``,
  ``resnet18_cifar``, ``mobilenet_v2``, ``transformer_block``, ``transformer_block_gelu_op``);
* ``light_models()`` -- the "light" models shipped inside the ``onnx`` package, with the
  input the onnx backend runner feeds them and their shipped expected output;
* ``random_inputs(model)`` -- seeded feeds for a model's graph inputs;
* ``save_with_external_data(model, path)`` -- write weights as an external-data file.

CLI: ``python -m nnc.testing.model_zoo NAME [-o FILE.onnx] [--image-size N] [--opset N]``.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nnc.testing.zoo_cnn import lenet, mlp, mobilenet_v2, resnet18
from nnc.testing.zoo_transformer import transformer_block

__all__ = [
    "LIGHT_MODEL_NAMES",
    "ZOO",
    "LightModel",
    "graph_inputs",
    "lenet",
    "light_models",
    "main",
    "mlp",
    "mobilenet_v2",
    "random_inputs",
    "resnet18",
    "resnet18_cifar",
    "save_with_external_data",
    "transformer_block",
]


def resnet18_cifar(
    image_size: int = 32, classes: int = 10, batch: int = 1, *, opset: int = 17, seed: int = 0
) -> onnx.ModelProto:
    """ResNet-18 with the CIFAR stem (3x3/1 Conv + BN + Relu, no MaxPool), default 32x32/10."""
    return resnet18(image_size, classes, batch, stem="cifar", opset=opset, seed=seed)


ZOO: dict[str, Callable[..., onnx.ModelProto]] = {
    "mlp": mlp,
    "lenet": lenet,
    "resnet18": resnet18,
    "resnet18_cifar": resnet18_cifar,
    "mobilenet_v2": mobilenet_v2,
    "transformer_block": transformer_block,
    "transformer_block_gelu_op": functools.partial(transformer_block, gelu="op"),
}


# ------------------------------------------------------------------------ light models
LIGHT_MODEL_NAMES = (
    "light_resnet50",
    "light_squeezenet",
    "light_inception_v1",
    "light_densenet121",
    "light_shufflenet",
    "light_vgg19",
    "light_zfnet512",
    "light_bvlc_alexnet",
    "light_inception_v2",
)


def light_models_dir() -> Path:
    """``onnx/backend/test/data/light`` inside the installed onnx package."""
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@dataclass(frozen=True)
class LightModel:
    """One of onnx's shipped "light" models with its reference input and output.

    ``input`` is what onnx's backend runner (``Runner.generate_dummy_data`` with
    ``random=False``) feeds: ``np.arange(n).reshape(shape) / n`` as float32, symbolic dims
    taken as 1. ``expected`` is the shipped ``<name>_output_0.pb``. Note these models'
    weights are ``ConstantOfShape(0.02)`` placeholders, so the expected outputs are nearly
    constant (e.g. a uniform 0.001 softmax): they test op coverage, not numerics.
    """

    name: str
    path: Path
    input_name: str
    input: np.ndarray
    output_name: str
    expected: np.ndarray

    def load(self) -> onnx.ModelProto:
        """The ONNX model (opset 9, IR 3)."""
        return onnx.load(str(self.path))

    @property
    def feeds(self) -> dict[str, np.ndarray]:
        """``{input_name: input}``, ready for ``InferenceSession.run``."""
        return {self.input_name: self.input}


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (IR < 4 models list weights as inputs too)."""
    inits = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def _static_shape(v: onnx.ValueInfoProto) -> tuple[int, ...]:
    """``v``'s shape with symbolic/unknown dimensions replaced by 1."""
    return tuple(
        d.dim_value if d.HasField("dim_value") else 1 for d in v.type.tensor_type.shape.dim
    )


def light_models() -> list[LightModel]:
    """The nine light models of ``onnx/backend/test/data/light`` in ``LIGHT_MODEL_NAMES`` order."""
    out = []
    root = light_models_dir()
    for name in LIGHT_MODEL_NAMES:
        path = root / f"{name}.onnx"
        model = onnx.load(str(path), load_external_data=False)
        (inp,) = graph_inputs(model)
        shape = _static_shape(inp)
        n = int(np.prod(shape))
        x = (np.arange(n).reshape(shape) / n).astype(np.float32)
        expected = numpy_helper.to_array(onnx.load_tensor(str(root / f"{name}_output_0.pb")))
        out.append(LightModel(name, path, inp.name, x, model.graph.output[0].name, expected))
    return out


# ---------------------------------------------------------------------------- helpers
def random_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded feeds for every non-initializer graph input of ``model``.

    Floating inputs are standard normal (cast to their dtype), integer inputs uniform in
    [0, 10), bool inputs fair coin flips. Symbolic dimensions are taken as 1.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph_inputs(model):
        dtype = helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        shape = _static_shape(v)
        if np.issubdtype(dtype, np.floating):
            arr = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            arr = rng.random(shape) < 0.5
        else:
            arr = rng.integers(0, 10, size=shape).astype(dtype)
        feeds[v.name] = arr
    return feeds


def save_with_external_data(
    model: onnx.ModelProto,
    path: str | os.PathLike,
    *,
    location: str | None = None,
    size_threshold: int = 1024,
) -> Path:
    """Save ``model`` to ``path`` with its tensors in one external-data file next to it.

    The data file is ``location`` (relative to ``path``'s directory; default
    ``<path name>.data``); tensors smaller than ``size_threshold`` bytes stay inline.
    ``model`` itself is not modified. Returns the data file's path.
    """
    path = Path(path)
    location = location or f"{path.name}.data"
    data = path.parent / location
    if data.exists():  # onnx appends to an existing data file
        data.unlink()
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(
        copy,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=size_threshold,
    )
    return data


# -------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """``python -m nnc.testing.model_zoo NAME [-o FILE] [--image-size N] [--opset N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m nnc.testing.model_zoo", description="Write a seeded zoo model to ONNX."
    )
    parser.add_argument("name", choices=sorted(ZOO))
    parser.add_argument("-o", "--output", help="output file (default NAME.onnx)")
    parser.add_argument("--image-size", type=int, help="input resolution (CNNs)")
    parser.add_argument("--classes", type=int, help="number of classes")
    parser.add_argument("--batch", type=int, help="batch size")
    parser.add_argument("--opset", type=int, help="default-domain opset (default 17)")
    parser.add_argument("--seed", type=int, help="weight seed (default 0)")
    parser.add_argument(
        "--external-data", action="store_true", help="store weights in FILE.onnx.data"
    )
    args = parser.parse_args(argv)
    builder = ZOO[args.name]
    accepted = inspect.signature(builder).parameters
    kwargs = {}
    for key in ("image_size", "classes", "batch", "opset", "seed"):
        value = getattr(args, key)
        if value is None:
            continue
        if key not in accepted:
            parser.error(f"{args.name} does not take --{key.replace('_', '-')}")
        kwargs[key] = value
    try:
        model = builder(**kwargs)
    except ValueError as e:
        parser.error(str(e))
    out = Path(args.output or f"{args.name}.onnx")
    if args.external_data:
        save_with_external_data(model, out)
    else:
        onnx.save_model(model, str(out))
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"wrote {out} ({len(model.graph.node)} nodes, {n_params} parameters)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
