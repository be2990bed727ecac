"""Compile LLVM IR text for a target and package the object: shared or static library.

``compile_ir`` parses, verifies, optimizes (``targets.optimize_module``, -O3 by default)
and emits an object in process. Bare-metal (``object_only``) targets compile in a child
Python process instead, because some intrinsics abort LLVM on Cortex-M and an abort must
not take the caller down. ``link_shared`` runs the target's C compiler
(``cc -shared -o lib.so obj.o [weights.o] -lm -lpthread``); ``archive_static`` runs
``ar rcs``; ``merge_objects`` runs ``cc -r`` (one relocatable object from several). A missing cross
toolchain raises ``TargetError`` naming the Debian package to install.

``python -m nnc.backends.llvm.link`` is the child-process entry (not a user command).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import llvmlite.binding as llvm

from nnc.backends.llvm.targets import Target, initialize_llvm, optimize_module
from nnc.errors import NNCError, TargetError


def _compile_in_process(ir_text: str, target: Target, opt_level: int) -> llvm.ModuleRef:
    initialize_llvm()
    tm = target.target_machine(opt=opt_level)
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    if opt_level > 0:
        optimize_module(mod, tm, opt_level)
    return mod


def _emit(mod: llvm.ModuleRef, target: Target, opt_level: int, kind: str) -> bytes:
    tm = target.target_machine(opt=opt_level)
    if kind == "obj":
        return tm.emit_object(mod)
    if kind == "asm":
        return tm.emit_assembly(mod).encode()
    return str(mod).encode()


def _compile_isolated(ir_text: str, target: Target, opt_level: int, kind: str) -> bytes:
    """Compile in a child process; a crash there becomes a TargetError here."""
    with tempfile.TemporaryDirectory(prefix="nnc-llc-") as tmp:
        src, dst = Path(tmp, "in.ll"), Path(tmp, "out")
        src.write_text(ir_text)
        cmd = [
            sys.executable,
            "-m",
            "nnc.backends.llvm.link",
            f"--triple={target.triple}",
            f"--cpu={target.cpu}",
            f"--features={target.features}",
            f"-O{opt_level}",
            f"--emit={kind}",
            str(src),
            str(dst),
        ]
        # The child must import this same nnc, installed or not.
        root = str(Path(__file__).resolve().parents[3])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
        }
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            how = (
                f"signal {-proc.returncode}" if proc.returncode < 0 else f"status {proc.returncode}"
            )
            detail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
            raise TargetError(
                f"LLVM failed compiling for {target.triple} (cpu {target.cpu}): {how}: {detail[0]}"
            )
        return dst.read_bytes()


@dataclass
class CompiledModule:
    """An object file for ``target`` plus lazy assembly / optimized IR."""

    target: Target
    opt_level: int
    object_bytes: bytes
    module_ref: llvm.ModuleRef | None = field(default=None, repr=False)
    ir_text: str | None = field(default=None, repr=False)  # kept only for isolated targets

    def assembly(self) -> str:
        """Target assembly of the optimized module."""
        return self._render("asm")

    def optimized_ir(self) -> str:
        """LLVM IR text after optimization."""
        return self._render("llvm")

    def _render(self, kind: str) -> str:
        if self.module_ref is not None:
            return _emit(self.module_ref, self.target, self.opt_level, kind).decode()
        assert self.ir_text is not None
        return _compile_isolated(self.ir_text, self.target, self.opt_level, kind).decode()


def compile_ir(
    ir_text: str, target: Target, opt_level: int = 3, isolate: bool | None = None
) -> CompiledModule:
    """Compile LLVM IR text to an object for ``target`` at ``-O<opt_level>``.

    ``isolate`` (default: for object-only targets) runs LLVM in a child process.
    """
    if isolate is None:
        isolate = target.object_only
    if isolate:
        obj = _compile_isolated(ir_text, target, opt_level, "obj")
        return CompiledModule(target, opt_level, obj, ir_text=ir_text)
    mod = _compile_in_process(ir_text, target, opt_level)
    return CompiledModule(target, opt_level, _emit(mod, target, opt_level, "obj"), module_ref=mod)


def _tool(name: str, target: Target, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        pkg = target.package or ("gcc" if name == "cc" else "binutils")
        raise TargetError(
            f"{what} '{name}' for target {target.name} not found: install the Debian "
            f"package {pkg} (apt-get install {pkg})"
        )
    return path


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NNCError(f"{what} failed ({' '.join(cmd)}): {proc.stderr.strip()}")


def _write_objects(tmp: str, objects: list[bytes], stem: str = "model") -> list[str]:
    paths = []
    for i, data in enumerate(objects):
        path = Path(tmp, f"{stem}.o" if i == 0 else f"{stem}{i}.o")
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def link_shared(
    object_bytes: bytes,
    out_path: str | os.PathLike,
    target: Target,
    extra_objects: tuple[bytes, ...] = (),
) -> None:
    """Link ``object_bytes`` (plus ``extra_objects``, e.g. the weights object) into the
    shared library ``out_path`` with the target's cc (``-lm -lpthread``)."""
    if target.object_only:
        raise TargetError(
            f"{target.name} is a bare-metal target: emit 'obj' or 'static', not a shared library"
        )
    cc = _tool(target.cc, target, "C compiler")
    with tempfile.TemporaryDirectory(prefix="nnc-link-") as tmp:
        objs = _write_objects(tmp, [object_bytes, *extra_objects])
        cmd = [cc, "-shared", "-o", os.fspath(out_path), *objs, "-lm", "-lpthread"]
        _run(cmd, "linking")


def merge_objects(objects: list[bytes], out_path: str | os.PathLike, target: Target) -> None:
    """One relocatable object from several (``cc -r``), for ``--emit obj``."""
    cc = _tool(target.cc, target, "C compiler")
    with tempfile.TemporaryDirectory(prefix="nnc-ld-r-") as tmp:
        objs = _write_objects(tmp, objects)
        _run([cc, "-r", "-nostdlib", "-o", os.fspath(out_path), *objs], "merging objects")


def archive_static(
    object_bytes: bytes,
    out_path: str | os.PathLike,
    target: Target,
    member: str = "model.o",
    extra_objects: tuple[bytes, ...] = (),
) -> None:
    """Write the static archive ``out_path`` holding the object as ``member`` (and each
    of ``extra_objects`` as ``<member stem>.<i>.o``)."""
    ar = shutil.which(target.ar) or shutil.which("llvm-ar") or _tool("ar", target, "archiver")
    with tempfile.TemporaryDirectory(prefix="nnc-ar-") as tmp:
        obj = Path(tmp, member)
        obj.write_bytes(object_bytes)
        paths = [str(obj)]
        for i, data in enumerate(extra_objects, 1):
            extra = Path(tmp, f"{obj.stem}.{i}.o")
            extra.write_bytes(data)
            paths.append(str(extra))
        Path(out_path).unlink(missing_ok=True)  # ar appends to an existing archive
        _run([ar, "rcs", os.fspath(out_path), *paths], "archiving")


def _main(argv: list[str] | None = None) -> int:
    """Child-process compiler: ``--triple/--cpu/--features/-O/--emit IN OUT``."""
    p = argparse.ArgumentParser(prog="nnc-llc")
    p.add_argument("--triple", required=True)
    p.add_argument("--cpu", default="")
    p.add_argument("--features", default="")
    p.add_argument("-O", dest="opt", type=int, default=3)
    p.add_argument("--emit", choices=("obj", "asm", "llvm"), default="obj")
    p.add_argument("src")
    p.add_argument("dst")
    a = p.parse_args(argv)
    target = Target(a.triple, a.cpu, a.features)
    mod = _compile_in_process(Path(a.src).read_text(), target, a.opt)
    Path(a.dst).write_bytes(_emit(mod, target, a.opt, a.emit))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
