"""nnc: an ahead-of-time neural-network compiler whose optimisations are compression passes.

Public API (contract, see README): ``load``, ``compile``, ``CompiledModel``, ``load_library``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["CompiledModel", "compile", "load", "load_library"]

# Heavy modules (xDSL, llvmlite, onnx) are imported on first use so `import nnc` is fast:
# the public names are nnc.compiler's, looked up lazily (PEP 562); their docstrings there
# are the API's contract.
if TYPE_CHECKING:
    from nnc.compiler import CompiledModel, compile, load, load_library


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nnc import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module 'nnc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
