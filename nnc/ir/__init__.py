"""The nn IR: dialect, types, weights, builder, text form and the numpy oracle.

All xDSL-specific calls live under this package so an xDSL upgrade touches one place.
"""

from nnc.ir.builder import GraphBuilder, io_names, main_func
from nnc.ir.dialect import NN, make_context
from nnc.ir.nn_base import NNOp, ShapeError, TensorSpec
from nnc.ir.types import DYNAMIC, tensor_type
from nnc.ir.weights import WeightAttr

__all__ = [
    "DYNAMIC",
    "NN",
    "GraphBuilder",
    "NNOp",
    "ShapeError",
    "TensorSpec",
    "WeightAttr",
    "io_names",
    "main_func",
    "make_context",
    "tensor_type",
]
