"""Compression and optimisation passes over the nn dialect: one ``ModulePass`` per file.

``PASSES`` is the explicit registry used by pipeline specs (``nnc-opt -p``,
``nnc --passes``); each key equals the pass class's ``name``. The -O levels are in
``nnc.passes.pipelines``.
"""

from __future__ import annotations

from xdsl.passes import ModulePass

from nnc.passes.canonicalize import CanonicalizePass
from nnc.passes.cse import CommonSubexpressionEliminationPass
from nnc.passes.dce import DeadCodeEliminationPass
from nnc.passes.fold_batchnorm import FoldBatchNormPass
from nnc.passes.fold_constants import FoldConstantsPass
from nnc.passes.fold_mul_into_conv import FoldMulIntoConvPass
from nnc.passes.fuse_activation import FuseActivationPass
from nnc.passes.report import PassReport
from nnc.passes.specialize_shapes import SpecializeShapesPass

PASSES: dict[str, type[ModulePass]] = {
    "canonicalize": CanonicalizePass,
    "cse": CommonSubexpressionEliminationPass,
    "dce": DeadCodeEliminationPass,
    "fold-batchnorm": FoldBatchNormPass,
    "fold-constants": FoldConstantsPass,
    "fold-mul-into-conv": FoldMulIntoConvPass,
    "fuse-activation": FuseActivationPass,
    "specialize-shapes": SpecializeShapesPass,
}

__all__ = ["PASSES", "PassReport"]
