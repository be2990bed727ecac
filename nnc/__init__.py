"""nnc: an ahead-of-time neural-network compiler whose optimisations are compression passes.

Public API (contract, see README): ``load``, ``compile``, ``CompiledModel``, ``load_library``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["CompiledModel", "compile", "load", "load_library"]

# Heavy modules (xDSL, llvmlite, onnx) are imported on first use so `import nnc` is fast.
if TYPE_CHECKING:
    import onnx
    from xdsl.dialects.builtin import ModuleOp

    from nnc.compiler import CompiledModel


def load(model: str | os.PathLike | onnx.ModelProto) -> ModuleOp:
    """Import an ONNX model (path or ModelProto) as an nn-dialect module (no passes).

    Raises ModelLoadError (missing/corrupt file) or UnsupportedOpError (naming the node).
    """
    from nnc.compiler import load as _load

    return _load(model)


def compile(
    model: str | os.PathLike | onnx.ModelProto,
    opt_level: int = 3,
    quant: str | None = None,
    calibration: Any = None,
    calib_method: str = "minmax",
    granularity: str | None = None,
    group_size: int | None = None,
    symmetric: bool | None = None,
    target: str | None = None,
    mcpu: str | None = None,
    prefix: str = "nnc",
    passes: str | None = None,
    batch: int = 1,
    conv_algo: str | None = None,
    threads: int | None = None,
    profile: bool = False,
    compress: str | None = None,
) -> CompiledModel:
    """Compile an ONNX model to native code for this machine and load it.

    Steps: import -> the -O``opt_level`` pass pipeline (or the ``passes`` spec instead,
    with ``specialize-shapes{batch=N}`` first) -> LLVM build for the host -> shared
    library in a private temporary directory -> loaded with ctypes.

    ``quant``: none, int8 (static; ``calibration`` = .npz path, mapping name -> samples
    or iterable of feeds; without it, dynamic), int8-dynamic, int8-weight, int4-weight,
    fp16, bf16, with ``calib_method`` (minmax, percentile, entropy, mse), ``granularity``
    (per-tensor, per-channel, per-group), ``group_size`` (default 128 for int4-weight,
    else 32) and ``symmetric`` (None: u8 activations, symmetric weights); see
    docs/quantization.md. Quantized ops without a native kernel raise UnsupportedOpError.
    ``target``/``mcpu`` must describe code this machine can run (TargetError otherwise);
    use the ``nnc`` command line to cross-compile. Every option problem raises an
    NNCError subclass with a one-line message.

    ``conv_algo`` (auto, autotune, direct, im2col, winograd2, winograd4, fft) runs the
    ``select-conv-algo{algo=...}`` pass after the pipeline (replacing the pipeline's own
    select-conv-algo, if any); None leaves the pipeline as it is.

    ``threads``: threads of the generated code (caller included); None = all cores of
    the machine running it (resolved when the library first runs), 1 = serial code with
    no threading at all. Change it later with ``CompiledModel.set_num_threads``.
    ``profile=True`` times every op; read ``CompiledModel.profile()``.

    ``compress``: a compression spec such as ``"prune=0.8,cluster=4bit,huffman"`` or
    ``"channels=0.25"`` (see ``nnc.compress.spec``); its passes run before
    ``fuse-activation`` and ``report`` gets a per-layer before/after table.
    """
    from nnc.compiler import compile as _compile

    return _compile(
        model,
        opt_level=opt_level,
        quant=quant,
        calibration=calibration,
        calib_method=calib_method,
        granularity=granularity,
        group_size=group_size,
        symmetric=symmetric,
        target=target,
        mcpu=mcpu,
        prefix=prefix,
        passes=passes,
        batch=batch,
        conv_algo=conv_algo,
        threads=threads,
        profile=profile,
        compress=compress,
    )


def load_library(path: str | os.PathLike, prefix: str | None = None) -> CompiledModel:
    """A CompiledModel over an existing nnc-built shared library.

    ``prefix`` is found from the exported ``*_run_with_workspace`` symbol when omitted.
    """
    from nnc.compiler import load_library as _load_library

    return _load_library(path, prefix)


def __getattr__(name: str) -> Any:
    if name == "CompiledModel":
        from nnc.compiler import CompiledModel

        return CompiledModel
    raise AttributeError(f"module 'nnc' has no attribute {name!r}")
