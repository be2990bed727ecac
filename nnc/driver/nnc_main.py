"""``nnc``: compile an ONNX model to a native library (or another artifact).

    nnc MODEL.onnx [-O0|-O1|-O2|-O3] [--quant MODE] [--calibration DATA.npz]
        [--calib-method M] [--granularity G] [--group-size N] [--symmetric|--asymmetric]
        [--max-error X] [--size-budget MIB]
        [--target TRIPLE] [--mcpu CPU] [--prefix NAME] [--emit KIND] [-o OUT]
        [--report] [--passes SPEC] [--batch N] [--conv-algo ALGO] [--threads N] [--profile]
        [--compress SPEC] [--layout nchw|nchwc]

Default output, in the current directory: ``lib<stem>.so`` (``--emit so``, plus
``lib<stem>.h`` next to it), ``lib<stem>.a`` (static, plus its ``.h``), ``lib<stem>.h``
(header), ``<stem>.o`` / ``.s`` / ``.ll`` / ``.mlir`` for obj / asm / llvm / mlir.

User errors (unreadable model, unsupported op, bad option value, unknown target, a file
that cannot be written) print one line ``nnc: error: <message>`` on stderr and exit 1;
malformed command lines exit 2, also with one line. Outputs are written to a staging
directory next to the destination and renamed into place, so a failure leaves no
partial file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import NoReturn

from nnc.errors import NNCError

#: --emit kind -> (file extension, whether the default name gets the ``lib`` prefix).
EMIT_KINDS: dict[str, tuple[str, bool]] = {
    "so": (".so", True),
    "obj": (".o", False),
    "static": (".a", True),
    "asm": (".s", False),
    "llvm": (".ll", False),
    "mlir": (".mlir", False),
    "header": (".h", True),
    "nncz": (".nncz", False),
    "onnx": (".onnx", False),  # ONNX (QDQ form for quantized models), docs/quantization.md
}
#: Kinds whose C header is written next to them.
_WITH_HEADER = ("so", "static")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``nnc: error: <message>``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _arg_parser() -> _Parser:
    from nnc.compiler import QUANT_MODES

    p = _Parser(
        prog="nnc",
        description="Compile an ONNX model to a self-contained native library.",
        epilog="default output (current directory): lib<stem>.so + lib<stem>.h; --emit static: "
        "lib<stem>.a + lib<stem>.h; header: lib<stem>.h; obj/asm/llvm/mlir: <stem>.o/.s/.ll/.mlir",
    )
    p.add_argument("model", help="the ONNX model file")
    p.add_argument(
        "-O",
        dest="opt_level",
        type=int,
        choices=(0, 1, 2, 3),
        default=3,
        help="optimisation level (default 3)",
    )
    p.add_argument(
        "--quant",
        choices=QUANT_MODES,
        default="none",
        help="quantize: int8 (static, calibrated), int8-dynamic, int8-weight, int4-weight, "
        "fp16, bf16, mixed (per-layer int8/int4/float to meet --max-error and/or "
        "--size-budget; needs --calibration) (default none); see docs/quantization.md",
    )
    p.add_argument(
        "--calibration",
        metavar="DATA.npz",
        help="calibration inputs for --quant (arrays keyed by input name)",
    )
    p.add_argument(
        "--calib-method",
        choices=("minmax", "percentile", "entropy", "mse"),
        default="minmax",
        help="activation range selection for --quant int8 (default minmax)",
    )
    p.add_argument(
        "--granularity",
        choices=("per-tensor", "per-channel", "per-group"),
        default=None,
        help="weight scale granularity (default per-channel; per-group for int4-weight)",
    )
    p.add_argument(
        "--group-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="weights per group with per-group granularity (default 128 for int4-weight, else 32)",
    )
    p.add_argument(
        "--max-error",
        type=float,
        default=None,
        metavar="X",
        help="--quant mixed: largest output error (relative RMS vs float on the calibration "
        "data) allowed",
    )
    p.add_argument(
        "--size-budget",
        type=float,
        default=None,
        metavar="MIB",
        help="--quant mixed: weights must fit in this many MiB",
    )
    sym = p.add_mutually_exclusive_group()
    sym.add_argument(
        "--symmetric",
        dest="symmetric",
        action="store_true",
        default=None,
        help="s8 activations with zero point 0 (default: u8 with a zero point)",
    )
    sym.add_argument(
        "--asymmetric",
        dest="symmetric",
        action="store_false",
        help="weight-only int weights with zero points (default: symmetric weights)",
    )
    p.add_argument("--target", metavar="TRIPLE", help="target triple (default: this machine)")
    p.add_argument("--mcpu", metavar="CPU", help="target CPU, optionally with +feature items")
    p.add_argument(
        "--prefix",
        default="nnc",
        metavar="NAME",
        help="prefix of the exported C symbols (default nnc)",
    )
    p.add_argument(
        "--emit",
        choices=tuple(EMIT_KINDS),
        default="so",
        help="artifact to write (default so, with its .h)",
    )
    p.add_argument(
        "-o", dest="output", metavar="OUT", help="output path (default from the model name)"
    )
    p.add_argument("--report", action="store_true", help="print the per-layer report to stdout")
    p.add_argument("--passes", metavar="SPEC", help="pass pipeline replacing the -O level's")
    p.add_argument(
        "--batch", type=_positive_int, default=1, metavar="N", help="batch size (default 1)"
    )
    p.add_argument(
        "--conv-algo",
        choices=("auto", "autotune", "direct", "im2col", "winograd2", "winograd4", "fft"),
        default=None,
        help="convolution algorithm: cost model (auto), measured (autotune) or forced "
        "(default: what the -O level does)",
    )
    p.add_argument(
        "--layout",
        choices=("nchw", "nchwc"),
        default="nchw",
        help="activation layout: nchw, or nchwc (conv chains in blocks of 16 channels, "
        "the nchwc-layout pass)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="threads of the generated code (default: all cores of the machine running it; "
        "1: no threading code)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="time every op; read the table with PFX_profile() / CompiledModel.profile()",
    )
    p.add_argument(
        "--compress",
        metavar="SPEC",
        help="compress the weights, e.g. 'prune=0.8,cluster=4bit,huffman' or 'channels=0.25' "
        "(items: channels=R, lowrank=R, energy=E, prune=S, scope=, pattern=, cluster=Bbit, "
        "sparse, codebook, codebook=off, cp, huffman); --emit nncz writes the compressed "
        "model file",
    )
    return p


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def default_output(model: str, kind: str) -> str:
    """The output path used without ``-o``: in the current directory, named after the model."""
    ext, lib = EMIT_KINDS[kind]
    stem = os.path.splitext(os.path.basename(model))[0] or "model"
    return f"lib{stem}{ext}" if lib else f"{stem}{ext}"


def _planned_files(out: str, kind: str) -> list[tuple[str, str]]:
    """(artifact kind, final path) of every file this run writes."""
    files = [(kind, out)]
    if kind in _WITH_HEADER:
        files.append(("header", os.path.splitext(out)[0] + ".h"))
    return files


def _write_outputs(comp, kind: str, out: str) -> list[str]:
    """Write the artifact(s) via a staging directory next to ``out``; return final paths."""
    from nnc.ir.text import save_text, sidecar_path

    directory = os.path.dirname(os.path.abspath(out))
    created = _missing_ancestor(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".nnc-", dir=directory)
    except OSError as err:
        _remove_created(created)
        raise NNCError(f"cannot write '{out}': {err.strerror or err}") from None
    try:
        moves = []
        for what, final in _planned_files(out, kind):
            tmp = os.path.join(staging, os.path.basename(final))
            if what == "nncz":
                from nnc.compress import nncz

                nncz.save(comp.module, tmp)
            elif what == "onnx":
                from nnc.frontends.onnx.export_qdq import save_qdq

                save_qdq(comp.module, tmp)
            elif what == "mlir":
                save_text(comp.module, tmp)
                if os.path.exists(sidecar_path(tmp)):
                    moves.append((sidecar_path(tmp), sidecar_path(final)))
            else:
                from nnc.backends.llvm import write_artifact

                write_artifact(comp.build, tmp, what)
            moves.append((tmp, final))
        for tmp, final in moves:
            os.replace(tmp, final)
        return [final for _, final in moves]
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_created(created)
        raise NNCError(f"cannot write '{out}': {err.strerror or err}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _missing_ancestor(directory: str) -> str | None:
    """The outermost missing folder of ``directory`` (None when it exists)."""
    missing = None
    while not os.path.exists(directory):
        missing, directory = directory, os.path.dirname(directory)
    return missing


def _remove_created(created: str | None) -> None:
    """Remove folders this run created for its outputs (nothing half-written stays)."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    from nnc.compiler import compile_model

    out = args.output or default_output(args.model, args.emit)
    if os.path.isdir(out):
        raise NNCError(f"-o '{out}' is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(out))
    existing = os.path.dirname(_missing_ancestor(parent) or os.path.join(parent, "x"))
    if not os.path.isdir(existing):
        raise NNCError(f"cannot write '{out}': '{existing}' is not a directory")
    comp = compile_model(
        args.model,
        opt_level=args.opt_level,
        quant=args.quant,
        calibration=args.calibration,
        calib_method=args.calib_method,
        granularity=args.granularity,
        group_size=args.group_size,
        symmetric=args.symmetric,
        max_error=args.max_error,
        size_budget=args.size_budget,
        target=args.target,
        mcpu=args.mcpu,
        prefix=args.prefix,
        passes=args.passes,
        batch=args.batch,
        build=args.emit not in ("mlir", "nncz", "onnx"),
        conv_algo=args.conv_algo,
        threads=args.threads,
        profile=args.profile,
        compress=args.compress,
        layout=args.layout,
    )
    _write_outputs(comp, args.emit, out)
    if args.report:
        print(comp.report.table())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nnc`` console script; returns the exit status."""
    try:
        args = _arg_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a command-line error (2, already printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return _run(args)
    except NNCError as err:
        print(f"nnc: error: {_one_line(str(err)) or type(err).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nnc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
