"""LLVM backend: an nn module -> one native object with the DESIGN.md C ABI.

    result = build(module, target=parse_target("aarch64-linux-gnu"), prefix="net")
    write_artifact(result, "out/libnet.so", "so")
    write_artifact(result, "out/libnet.h", "header")

Pipeline (``build``): lower ``main`` to kernel calls over buffers (``lower.py``), emit one
kernel per distinct (op kind, shapes, attributes) and plan the workspace
(``codegen.py``/``plan.py``), then compile the module at ``-O<opt_level>`` for the target
(``link.py``). Shapes must be static.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from nnc.backends.llvm.codegen import generate_module
from nnc.backends.llvm.header import check_prefix, header_text
from nnc.backends.llvm.link import CompiledModule, archive_static, compile_ir, link_shared
from nnc.backends.llvm.lower import lower_module
from nnc.backends.llvm.program import IOSpec
from nnc.backends.llvm.targets import Target, host_target, parse_target
from nnc.errors import InvalidOptionError

__all__ = [
    "ARTIFACT_KINDS",
    "BuildResult",
    "IOSpec",
    "Target",
    "build",
    "parse_target",
    "write_artifact",
]

#: ``write_artifact`` kinds and what they write.
ARTIFACT_KINDS = {
    "so": "shared library",
    "obj": "object file",
    "static": "static archive (.a)",
    "asm": "target assembly",
    "llvm": "optimized LLVM IR (.ll)",
    "header": "C header (.h)",
}


@dataclass
class BuildResult:
    """A compiled model: object code, header and the numbers the report shows.

    ``llvm_ir`` (optimized IR) and ``asm`` are rendered on first access.
    ``workspace_bytes`` is what ``PFX_workspace_size()`` returns (the planned peak plus
    63 bytes of alignment slack); ``peak_bytes`` the planned peak itself;
    ``intermediate_bytes`` the sum of all intermediate tensor sizes (no reuse).
    """

    target: Target
    prefix: str
    object_bytes: bytes
    header_text: str
    inputs: list[IOSpec]
    outputs: list[IOSpec]
    workspace_bytes: int
    peak_bytes: int
    intermediate_bytes: int
    scratch_bytes: int
    weight_bytes: int
    kernel_count: int
    step_count: int
    compile_seconds: float
    _compiled: CompiledModule = field(repr=False)

    @functools.cached_property
    def llvm_ir(self) -> str:
        """LLVM IR text of the module after optimization."""
        return self._compiled.optimized_ir()

    @functools.cached_property
    def asm(self) -> str:
        """Target assembly text."""
        return self._compiled.assembly()


def build(
    module: ModuleOp,
    *,
    target: Target | None = None,
    prefix: str = "nnc",
    opt_level: int = 3,
) -> BuildResult:
    """Compile the model ``module`` (nn dialect, static shapes) for ``target`` (host).

    Raises NNCError for dynamic shapes, UnsupportedOpError for ops/dtypes the backend
    lacks, InvalidOptionError for a bad prefix or opt level, TargetError for targets.
    """
    start = time.perf_counter()
    try:
        check_prefix(prefix)
    except ValueError as err:
        raise InvalidOptionError(str(err)) from None
    if opt_level not in (0, 1, 2, 3):
        raise InvalidOptionError(f"opt_level must be 0..3, got {opt_level}")
    target = target or host_target()
    # 1. nn ops -> kernel calls over input/output/weight/temporary buffers.
    lowered = lower_module(module)
    # 2. One kernel per distinct spec, workspace plan, C ABI entry points.
    gen = generate_module(lowered, target, prefix)
    # 3. LLVM -O<opt_level> and object emission for the target.
    compiled = compile_ir(gen.ir_text, target, opt_level)
    gen.ir_text = ""  # the text holds every weight hex-escaped: free it early
    header = header_text(
        prefix,
        lowered.inputs,
        lowered.outputs,
        workspace_size=gen.workspace_size,
        target=target.describe(),
    )
    return BuildResult(
        target=target,
        prefix=prefix,
        object_bytes=compiled.object_bytes,
        header_text=header,
        inputs=lowered.inputs,
        outputs=lowered.outputs,
        workspace_bytes=gen.workspace_size,
        peak_bytes=gen.plan.peak_bytes,
        intermediate_bytes=gen.plan.intermediate_bytes,
        scratch_bytes=gen.plan.scratch_bytes,
        weight_bytes=gen.weight_bytes,
        kernel_count=gen.kernel_count,
        step_count=len(lowered.steps),
        compile_seconds=time.perf_counter() - start,
        _compiled=compiled,
    )


def _write_atomic(path: Path, produce) -> None:
    """``produce(tmp_path)`` then rename over ``path``; nothing is left on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        produce(Path(tmp))
        os.chmod(tmp, 0o755 if path.suffix == ".so" else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_artifact(result: BuildResult, path: str | os.PathLike, kind: str) -> Path:
    """Write one artifact of ``result`` to ``path`` atomically; returns the path.

    ``kind``: ``so``, ``obj``, ``static``, ``asm``, ``llvm`` or ``header``. The file is
    produced under a temporary name in the same folder and renamed into place.
    """
    if kind not in ARTIFACT_KINDS:
        raise InvalidOptionError(f"unknown artifact kind {kind!r}; one of {sorted(ARTIFACT_KINDS)}")
    path = Path(path)
    if not path.parent.is_dir():
        raise InvalidOptionError(f"output folder {str(path.parent)!r} does not exist")
    target = result.target
    writers = {
        "so": lambda p: link_shared(result.object_bytes, p, target),
        "obj": lambda p: p.write_bytes(result.object_bytes),
        "static": lambda p: archive_static(
            result.object_bytes, p, target, member=f"{result.prefix}.o"
        ),
        "asm": lambda p: p.write_text(result.asm),
        "llvm": lambda p: p.write_text(result.llvm_ir),
        "header": lambda p: p.write_text(result.header_text),
    }
    _write_atomic(path, writers[kind])
    return path
