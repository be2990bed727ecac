"""Compression and optimisation passes over the nn dialect: one ``ModulePass`` per file.

``PASSES`` is the explicit registry used by pipeline specs (``nnc-opt -p``,
``nnc --passes``); each key equals the pass class's ``name``. The -O levels are in
``nnc.passes.pipelines``.
"""

from __future__ import annotations

from xdsl.passes import ModulePass

from nnc.passes.calibrate import CalibratePass
from nnc.passes.canonicalize import CanonicalizePass
from nnc.passes.cluster import ClusterPass
from nnc.passes.codebook_kernels import CodebookKernelsPass
from nnc.passes.compact_weights import CompactWeightsPass
from nnc.passes.cse import CommonSubexpressionEliminationPass
from nnc.passes.dce import DeadCodeEliminationPass
from nnc.passes.fft_conv import FFTConvPass
from nnc.passes.fold_batchnorm import FoldBatchNormPass
from nnc.passes.fold_constants import FoldConstantsPass
from nnc.passes.fold_mul_into_conv import FoldMulIntoConvPass
from nnc.passes.fold_qdq import FoldQDQPass
from nnc.passes.fuse_activation import FuseActivationPass
from nnc.passes.fuse_gelu import FuseGeluPass
from nnc.passes.fuse_qdq import FuseQDQPass
from nnc.passes.low_rank import LowRankPass
from nnc.passes.matmul_bias_to_gemm import MatMulBiasToGemmPass
from nnc.passes.mixed_precision import MixedPrecisionPass
from nnc.passes.nchwc_layout import NCHWcLayoutPass
from nnc.passes.prune import PrunePass
from nnc.passes.prune_channels import PruneChannelsPass
from nnc.passes.quant_sensitivity import QuantSensitivityPass
from nnc.passes.quantize import QuantizePass
from nnc.passes.report import PassReport
from nnc.passes.select_conv_algo import SelectConvAlgoPass
from nnc.passes.sparse_kernels import SparseKernelsPass
from nnc.passes.specialize_shapes import SpecializeShapesPass
from nnc.passes.winograd_conv import WinogradConvPass

PASSES: dict[str, type[ModulePass]] = {
    "calibrate": CalibratePass,
    "canonicalize": CanonicalizePass,
    "cluster": ClusterPass,
    "codebook-kernels": CodebookKernelsPass,
    "compact-weights": CompactWeightsPass,
    "cse": CommonSubexpressionEliminationPass,
    "dce": DeadCodeEliminationPass,
    "fft-conv": FFTConvPass,
    "fold-batchnorm": FoldBatchNormPass,
    "fold-constants": FoldConstantsPass,
    "fold-mul-into-conv": FoldMulIntoConvPass,
    "fold-qdq": FoldQDQPass,
    "fuse-activation": FuseActivationPass,
    "fuse-gelu": FuseGeluPass,
    "fuse-qdq": FuseQDQPass,
    "low-rank": LowRankPass,
    "matmul-bias-to-gemm": MatMulBiasToGemmPass,
    "mixed-precision": MixedPrecisionPass,
    "nchwc-layout": NCHWcLayoutPass,
    "prune": PrunePass,
    "prune-channels": PruneChannelsPass,
    "quant-sensitivity": QuantSensitivityPass,
    "quantize": QuantizePass,
    "select-conv-algo": SelectConvAlgoPass,
    "sparse-kernels": SparseKernelsPass,
    "specialize-shapes": SpecializeShapesPass,
    "winograd-conv": WinogradConvPass,
}

__all__ = ["PASSES", "PassReport"]
