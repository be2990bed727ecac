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
from nnc.backends.llvm.link import (
    CompiledModule,
    archive_static,
    compile_ir,
    link_shared,
    merge_objects,
)
from nnc.backends.llvm.lower import lower_module
from nnc.backends.llvm.profile import step_name
from nnc.backends.llvm.program import IOSpec
from nnc.backends.llvm.targets import Target, host_target, parse_target
from nnc.backends.llvm.weights_obj import asm_definition, elf_data_object, llvm_definition
from nnc.errors import InvalidOptionError, NNCError

__all__ = [
    "ARTIFACT_KINDS",
    "BuildResult",
    "StepInfo",
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


@dataclass(frozen=True)
class StepInfo:
    """One kernel call of the entry function, as ``PFX_profile`` lists it."""

    name: str
    op: str
    shape: tuple[int, ...]
    macs: int


@dataclass
class BuildResult:
    """A compiled model: object code, header and the numbers the report shows.

    ``llvm_ir`` (optimized IR) and ``asm`` are rendered on first access.
    ``workspace_bytes`` is what ``PFX_workspace_size()`` returns (the planned peak plus
    63 bytes of alignment slack); ``peak_bytes`` the planned peak itself;
    ``intermediate_bytes`` the sum of all intermediate tensor sizes (no reuse).
    ``threads`` is the default thread count (0 = all cores, 1 = no threading code);
    ``profile`` whether the library times its steps (``steps`` names them).
    ``weights_object`` (large models on hosted targets): an ELF object defining the
    hidden symbol ``weights_symbol`` that ``object_bytes`` references; every artifact
    writer includes it (``objects``), so libraries stay self-contained.
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
    threads: int = 1
    profile: bool = False
    steps: list[StepInfo] = field(default_factory=list, repr=False)
    weights_object: bytes | None = field(default=None, repr=False)
    weights_symbol: str = ""

    @property
    def objects(self) -> tuple[bytes, ...]:
        """The model object plus, for large models, the weights object (link both)."""
        extra = (self.weights_object,) if self.weights_object is not None else ()
        return (self.object_bytes, *extra)

    def _weights_blob(self) -> bytes:
        assert self.weights_object is not None
        return self.weights_object[64 : 64 + self.weight_bytes_padded]

    weight_bytes_padded: int = 0

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
    threads: int = 1,
    profile: bool = False,
    external_weights: bool = True,
) -> BuildResult:
    """Compile the model ``module`` (nn dialect, static shapes) for ``target`` (host).

    ``threads``: default thread count of the library (caller included): 1 = serial code
    without any threading, N > 1 = N threads, 0 = all CPUs of the running process.
    Bare-metal targets are always serial. ``profile`` adds per-step timing and the
    ``PFX_profile`` functions. ``external_weights``: put the weights of large models
    (``weights_obj.EXTERNAL_WEIGHTS_MIN_BYTES``) in a separate object (much faster to
    compile) rather than in the LLVM module.

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
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InvalidOptionError(f"threads must be >= 0 (0 = all cores), got {threads!r}")
    target = target or host_target()
    if target.object_only:
        threads = 1
    # 1. nn ops -> kernel calls over input/output/weight/temporary buffers.
    lowered = lower_module(module)
    # 2. One kernel per distinct spec, workspace plan, C ABI entry points.
    gen = generate_module(
        lowered,
        target,
        prefix,
        threads=threads,
        profile=profile,
        external_weights=external_weights,
    )
    # 3. LLVM -O<opt_level> and object emission for the target.
    compiled = compile_ir(gen.ir_text, target, opt_level)
    gen.ir_text = ""  # the text holds every weight hex-escaped: free it early
    weights_object = None
    if gen.weights_blob is not None:
        weights_object = elf_data_object(
            compiled.object_bytes, gen.weights_symbol, gen.weights_blob
        )
    header = header_text(
        prefix,
        lowered.inputs,
        lowered.outputs,
        workspace_size=gen.workspace_size,
        target=target.describe(),
        profile=profile,
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
        threads=threads,
        profile=profile,
        weights_object=weights_object,
        weights_symbol=gen.weights_symbol,
        weight_bytes_padded=len(gen.weights_blob or b""),
        steps=[
            StepInfo(step_name(i, s), s.label, tuple(s.shape), s.macs)
            for i, s in enumerate(lowered.steps)
        ],
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


def _with_weights(result: BuildResult, text: str, kind: str) -> str:
    """``text`` (assembly or LLVM IR) with the external weights spliced back in."""
    if result.weights_object is None:
        return text
    sym, blob = result.weights_symbol, result._weights_blob()
    if kind == "asm":
        return text + "\n" + asm_definition(sym, blob)
    lines = text.splitlines()
    decl = f'@"{sym}" = external hidden'
    for i, line in enumerate(lines):
        if line.startswith(decl) or line.startswith(f"@{sym} = external hidden"):
            lines[i] = llvm_definition(sym, blob)
            return "\n".join(lines) + "\n"
    raise NNCError(f"cannot find the declaration of {sym} in the LLVM IR")


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
    extra = result.objects[1:]
    writers = {
        "so": lambda p: link_shared(result.object_bytes, p, target, extra),
        "obj": lambda p: (
            merge_objects(list(result.objects), p, target)
            if extra
            else p.write_bytes(result.object_bytes)
        ),
        "static": lambda p: archive_static(
            result.object_bytes, p, target, member=f"{result.prefix}.o", extra_objects=extra
        ),
        "asm": lambda p: p.write_text(_with_weights(result, result.asm, "asm")),
        "llvm": lambda p: p.write_text(_with_weights(result, result.llvm_ir, "llvm")),
        "header": lambda p: p.write_text(result.header_text),
    }
    _write_atomic(path, writers[kind])
    return path
