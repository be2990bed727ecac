"""The ONNX frontend: ``import_onnx(model) -> ModuleOp`` (an nn-dialect module).

Converters live one file per op family and register themselves by ONNX op type and
opset range (``registry.py``); importing this package imports all of them.
"""

from nnc.frontends.onnx import (  # noqa: F401  (registration side effects)
    activations,
    arithmetic,
    constants,
    conv,
    dense,
    normalization,
    pooling,
    quantized,
    reduce,
    shape_ops,
    slicing,
    softmax,
)
from nnc.frontends.onnx.importer import import_onnx
from nnc.frontends.onnx.registry import supported_ops

__all__ = ["import_onnx", "supported_ops"]
