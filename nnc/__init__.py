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
    target: str | None = None,
    mcpu: str | None = None,
    prefix: str = "nnc",
    passes: str | None = None,
    batch: int = 1,
) -> CompiledModel:
    """Compile an ONNX model to native code for this machine and load it.

    Steps: import -> the -O``opt_level`` pass pipeline (or the ``passes`` spec instead,
    with ``specialize-shapes{batch=N}`` first) -> LLVM build for the host -> shared
    library in a private temporary directory -> loaded with ctypes.

    ``quant`` other than None/"none" is not supported yet (InvalidOptionError).
    ``target``/``mcpu`` must describe code this machine can run (TargetError otherwise);
    use the ``nnc`` command line to cross-compile. Every option problem raises an
    NNCError subclass with a one-line message.
    """
    from nnc.compiler import compile as _compile

    return _compile(
        model,
        opt_level=opt_level,
        quant=quant,
        calibration=calibration,
        target=target,
        mcpu=mcpu,
        prefix=prefix,
        passes=passes,
        batch=batch,
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
