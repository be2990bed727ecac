"""Exported symbols of a shared library, and the nnc prefix they reveal.

A library built by nnc exports ``PFX_run_with_workspace`` (with ``PFX_num_inputs`` and
the rest of the C ABI). When the caller does not know ``PFX`` we read the ELF dynamic
symbol table with a small pure-Python reader (32/64-bit, either byte order); for other
formats (or an ELF file we cannot parse) we fall back to ``nm``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from typing import BinaryIO

from nnc.errors import ModelLoadError

#: The one function every nnc library exports under its prefix.
RUN_SUFFIX = "_run_with_workspace"
#: A second ABI function a candidate prefix must also export (guards against look-alikes).
_COMPANION_SUFFIX = "_num_inputs"

_SHT_SYMTAB, _SHT_DYNSYM = 2, 11
_STB_GLOBAL, _STB_WEAK = 1, 2


class _NotElf(Exception):
    """The file is not an ELF file we can read."""


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise _NotElf("truncated ELF file")
    return data


def _section_headers(f: BinaryIO, end: str, is64: bool) -> list[tuple[int, ...]]:
    """(sh_type, sh_offset, sh_size, sh_link, sh_entsize) of every section."""
    head = _read_at(f, 0, 64 if is64 else 52)
    if is64:
        shoff = struct.unpack_from(end + "Q", head, 0x28)[0]
        shentsize, shnum = struct.unpack_from(end + "HH", head, 0x3A)
        fmt = end + "IIQQQQIIQQ"
    else:
        shoff = struct.unpack_from(end + "I", head, 0x20)[0]
        shentsize, shnum = struct.unpack_from(end + "HH", head, 0x2E)
        fmt = end + "IIIIIIIIII"
    if shoff == 0 or shentsize < struct.calcsize(fmt):
        raise _NotElf("no section headers")
    if shnum == 0:  # extended numbering: the real count is section 0's sh_size
        shnum = struct.unpack(fmt, _read_at(f, shoff, struct.calcsize(fmt)))[5]
    table = _read_at(f, shoff, shentsize * shnum)
    headers = []
    for i in range(shnum):
        _, sh_type, _, _, off, size, link, _, _, entsize = struct.unpack_from(
            fmt, table, i * shentsize
        )
        headers.append((sh_type, off, size, link, entsize))
    return headers


def _elf_defined_globals(path: str) -> list[str]:
    """Names of the defined global/weak symbols in the ELF dynamic (else static) table."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if (
            len(ident) < 16
            or ident[:4] != b"\x7fELF"
            or ident[4] not in (1, 2)
            or ident[5] not in (1, 2)
        ):
            raise _NotElf("not an ELF file")
        is64, end = ident[4] == 2, "<" if ident[5] == 1 else ">"
        sections = _section_headers(f, end, is64)
        tables = [s for s in sections if s[0] == _SHT_DYNSYM] or [
            s for s in sections if s[0] == _SHT_SYMTAB
        ]
        if not tables:
            raise _NotElf("no symbol table")
        _, off, size, link, entsize = tables[0]
        if link >= len(sections):
            raise _NotElf("bad string table index")
        symbols = _read_at(f, off, size)
        strings = _read_at(f, sections[link][1], sections[link][2])
    fmt = end + ("IBBHQQ" if is64 else "IIIBBH")
    entsize = entsize or struct.calcsize(fmt)
    names = []
    for pos in range(0, len(symbols) - entsize + 1, entsize):
        fields = struct.unpack_from(fmt, symbols, pos)
        name_off, info, shndx = (
            (fields[0], fields[1], fields[3]) if is64 else (fields[0], fields[3], fields[5])
        )
        if shndx == 0 or (info >> 4) not in (_STB_GLOBAL, _STB_WEAK):
            continue
        stop = strings.find(b"\0", name_off)
        names.append(strings[name_off : stop if stop >= 0 else None].decode("utf-8", "replace"))
    return names


def _nm_defined_globals(path: str) -> list[str]:
    """Fallback for non-ELF files: ask ``nm`` (dynamic table first, then the full one)."""
    nm = shutil.which("nm")
    if nm is None:
        return []
    for flags in (["-D", "--defined-only"], ["-g", "--defined-only"]):
        proc = subprocess.run([nm, *flags, path], capture_output=True, text=True, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            # Mach-O prefixes C symbols with an underscore.
            return [
                line.split()[-1].removeprefix("_")
                for line in proc.stdout.splitlines()
                if line.strip()
            ]
    return []


def exported_symbols(path: str | os.PathLike) -> list[str]:
    """The defined global symbols of the library at ``path``."""
    path = os.fspath(path)
    try:
        return _elf_defined_globals(path)
    except (_NotElf, struct.error):
        return _nm_defined_globals(path)


def nnc_prefixes(path: str | os.PathLike) -> list[str]:
    """Every prefix PFX for which the library exports ``PFX_run_with_workspace`` and its ABI."""
    names = set(exported_symbols(path))
    found = []
    for name in names:
        prefix = name[: -len(RUN_SUFFIX)]
        if name.endswith(RUN_SUFFIX) and prefix and prefix + _COMPANION_SUFFIX in names:
            found.append(prefix)
    return sorted(found)


def find_prefix(path: str | os.PathLike) -> str:
    """The single nnc prefix of the library at ``path``; ModelLoadError if none or several."""
    prefixes = nnc_prefixes(path)
    if len(prefixes) == 1:
        return prefixes[0]
    if not prefixes:
        raise ModelLoadError(
            f"{os.fspath(path)}: no exported '*{RUN_SUFFIX}' function found; "
            "not a library built by nnc (or pass its prefix explicitly)"
        )
    raise ModelLoadError(
        f"{os.fspath(path)} holds several models (prefixes {', '.join(prefixes)}); "
        "pass prefix= to choose one"
    )
