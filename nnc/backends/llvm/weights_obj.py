"""Large weights as a separate ELF object instead of LLVM IR constants (compile time).

Printing hundreds of MB of weights as hex-escaped ``c"..."`` IR strings and parsing them
back costs ~0.05 s per MB (light_vgg19: 548 MB, ~28 of its 33 s of compile time). For
large models the code generator instead declares one ``external hidden`` byte array
``PFX.weights`` and this module writes the bytes straight into a tiny ELF relocatable
object defining it (``.rodata``, 64-byte aligned, global hidden symbol). The model's
library is still self-contained: the shared library and static archive get both objects
(the symbol is hidden, so it is not exported and prefixes keep models apart), ``--emit
obj`` merges them with the target C compiler's ``-r`` (relocatable link), and ``--emit
llvm/asm`` splice the bytes back into the text.

``elf_data_object`` copies the ELF class, byte order, OS ABI, machine and flags from the
model's own object (so ARM EABI/float-ABI flags match).
"""

from __future__ import annotations

import struct

#: Models with at least this many weight bytes get a separate weights object.
EXTERNAL_WEIGHTS_MIN_BYTES = 4 << 20

_SHT_PROGBITS, _SHT_SYMTAB, _SHT_STRTAB = 1, 2, 3
_SHF_ALLOC = 2
_STB_GLOBAL, _STT_OBJECT, _STV_HIDDEN = 1, 1, 2
_ALIGN = 64


def _pad(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-len(buf) % align))


def elf_data_object(template: bytes, symbol: str, data: bytes) -> bytes:
    """An ELF relocatable object defining hidden global ``symbol`` = ``data`` in .rodata.

    ``template`` is an ELF object of the target (the model object): its identification,
    machine and flags are reused. Raises ValueError if it is not ELF.
    """
    if template[:4] != b"\x7fELF" or template[4] not in (1, 2) or template[5] not in (1, 2):
        raise ValueError("the model object is not ELF")
    is64, end = template[4] == 2, "<" if template[5] == 1 else ">"
    machine = struct.unpack_from(end + "H", template, 18)[0]
    flags = struct.unpack_from(end + "I", template, 48 if is64 else 36)[0]
    ehsize, shentsize = (64, 64) if is64 else (52, 40)

    shstr = b"\0.rodata\0.note.GNU-stack\0.symtab\0.strtab\0.shstrtab\0"
    name_at = {n: shstr.index(n.encode() + b"\0") for n in
               (".rodata", ".note.GNU-stack", ".symtab", ".strtab", ".shstrtab")}  # fmt: skip
    strtab = b"\0" + symbol.encode() + b"\0"
    info = (_STB_GLOBAL << 4) | _STT_OBJECT
    if is64:
        null_sym = struct.pack(end + "IBBHQQ", 0, 0, 0, 0, 0, 0)
        sym = struct.pack(end + "IBBHQQ", 1, info, _STV_HIDDEN, 1, 0, len(data))
    else:
        null_sym = struct.pack(end + "IIIBBH", 0, 0, 0, 0, 0, 0)
        sym = struct.pack(end + "IIIBBH", 1, 0, len(data), info, _STV_HIDDEN, 1)
    symtab = null_sym + sym

    out = bytearray(ehsize)
    _pad(out, _ALIGN)
    data_off = len(out)
    out += data
    _pad(out, 8)
    symtab_off = len(out)
    out += symtab
    strtab_off = len(out)
    out += strtab
    shstr_off = len(out)
    out += shstr
    _pad(out, 8)
    shoff = len(out)
    sections = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0),
        (name_at[".rodata"], _SHT_PROGBITS, _SHF_ALLOC, data_off, len(data), 0, 0, _ALIGN, 0),
        (name_at[".note.GNU-stack"], _SHT_PROGBITS, 0, data_off, 0, 0, 0, 1, 0),
        (name_at[".symtab"], _SHT_SYMTAB, 0, symtab_off, len(symtab), 4, 1, 8, len(sym)),
        (name_at[".strtab"], _SHT_STRTAB, 0, strtab_off, len(strtab), 0, 0, 1, 0),
        (name_at[".shstrtab"], _SHT_STRTAB, 0, shstr_off, len(shstr), 0, 0, 1, 0),
    ]
    fmt = end + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
    for name, typ, fl, off, size, link, inf, align, entsize in sections:
        out += struct.pack(fmt, name, typ, fl, 0, off, size, link, inf, align, entsize)
    ident = template[:16]
    if is64:
        head = struct.pack(end + "HHIQQQIHHHHHH", 1, machine, 1, 0, 0, shoff, flags,
                           ehsize, 0, 0, shentsize, len(sections), 5)  # fmt: skip
    else:
        head = struct.pack(end + "HHIIIIIHHHHHH", 1, machine, 1, 0, 0, shoff, flags,
                           ehsize, 0, 0, shentsize, len(sections), 5)  # fmt: skip
    out[:ehsize] = ident + head
    return bytes(out)


def llvm_definition(symbol: str, data: bytes) -> str:
    """The LLVM IR line defining ``symbol`` as the bytes (replaces its declaration)."""
    from nnc.backends.llvm.codegen import hex_escape

    return f'@"{symbol}" = hidden constant [{len(data)} x i8] c"{hex_escape(data)}", align {_ALIGN}'


def asm_definition(symbol: str, data: bytes) -> str:
    """GNU assembler text defining ``symbol`` (hidden, .rodata) as the bytes."""
    lines = [
        "\t.section\t.rodata",
        f"\t.p2align\t{_ALIGN.bit_length() - 1}",
        f'\t.globl\t"{symbol}"',
        f'\t.hidden\t"{symbol}"',
        f'"{symbol}":',
    ]
    step = 32
    for i in range(0, len(data), step):
        lines.append("\t.byte\t" + ",".join(str(b) for b in data[i : i + step]))
    return "\n".join(lines) + "\n"
