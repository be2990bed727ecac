"""nnc: an ahead-of-time neural-network compiler whose optimisations are compression passes.

Public API (contract, see README): ``load``, ``compile``, ``CompiledModel``, ``load_library``.
"""

__version__ = "0.1.0"
