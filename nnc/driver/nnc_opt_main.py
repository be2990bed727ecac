"""``nnc-opt``: run passes on textual nn IR, like ``mlir-opt``/``xdsl-opt``.

    nnc-opt FILE.mlir -p 'fold-batchnorm,specialize-shapes{batch=2}' [-o OUT.mlir]

Reads FILE (``-`` or nothing: stdin) and its side-car weights ``FILE.weights.npz`` if
present, runs the pipeline (verifying after every pass) and prints the IR. User errors
(unreadable file, parse/verify error, bad pipeline, a pass that cannot handle the
model) print one line ``nnc-opt: error: ...`` and exit 1. With ``--verify-diagnostics``
that line goes to stdout instead and the exit status is 0, so FileCheck can check it;
``--split-input-file`` treats ``// -----`` separated chunks as independent inputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import ParseError, VerifyException

from nnc.errors import NNCError
from nnc.ir.text import module_to_text, parse_module, save_text, sidecar_path
from nnc.passes import PASSES
from nnc.passes.pipelines import PIPELINES, run_pipeline

SPLIT_MARKER = "// -----"


class UserError(Exception):
    """A one-line problem with the user's input; printed without a traceback."""


class _OneLineArgumentParser(argparse.ArgumentParser):
    """Bad command-line options: one line on stderr, exit status 2 (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _arg_parser() -> argparse.ArgumentParser:
    parser = _OneLineArgumentParser(
        prog="nnc-opt",
        description="Run nnc passes on textual nn-dialect IR.",
        epilog="passes: " + ", ".join(sorted(PASSES)),
    )
    parser.add_argument("input", nargs="?", default="-", help="IR file, or - for stdin")
    parser.add_argument(
        "-p",
        "--passes",
        default="",
        metavar="SPEC",
        help="pass pipeline, e.g. 'fold-batchnorm,specialize-shapes{batch=2}'",
    )
    parser.add_argument(
        "-O",
        dest="level",
        type=int,
        choices=sorted(PIPELINES),
        help="run the -O pipeline of this level (after -p, if both)",
    )
    parser.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    parser.add_argument(
        "--verify-diagnostics",
        action="store_true",
        help="print user errors to stdout and exit 0 (for negative tests)",
    )
    parser.add_argument(
        "--split-input-file",
        action="store_true",
        help=f"process '{SPLIT_MARKER}' separated chunks independently",
    )
    parser.add_argument("--report", action="store_true", help="print what each pass did to stderr")
    return parser


def _read_input(path: str) -> tuple[str, dict[str, np.ndarray]]:
    """Text of the IR file and its side-car weights (empty for stdin)."""
    if path == "-":
        return sys.stdin.read(), {}
    try:
        with open(path) as f:
            text = f.read()
        weights = {}
        if os.path.exists(sidecar_path(path)):
            with np.load(sidecar_path(path)) as data:
                weights = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read '{path}': {err}") from None
    return text, weights


def _one_line(err: Exception, name: str, line_offset: int) -> str:
    """A one-line message for a parse, verify or nnc error."""
    if isinstance(err, ParseError):
        loc = err.span.get_location()
        return f"{name}:{loc.line + line_offset}:{loc.col}: {err.msg}"
    first = str(err).strip().splitlines()
    text = first[0] if first else type(err).__name__
    return f"{name}: IR does not verify: {text}" if isinstance(err, VerifyException) else text


def _process(text: str, weights: dict, spec: str, report_to_stderr: bool) -> ModuleOp:
    module = parse_module(text, weights)
    module.verify()
    report = run_pipeline(module, spec)
    if report_to_stderr and report.lines:
        print(report, file=sys.stderr)
    return module


def _write(output: str, text: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        with open(output, "w") as f:
            f.write(text)
    except OSError as err:
        raise UserError(f"cannot write '{output}': {err}") from None


def _run(args: argparse.Namespace) -> int:
    text, weights = _read_input(args.input)
    spec = ",".join(s for s in (args.passes, PIPELINES.get(args.level, "")) if s)
    name = "<stdin>" if args.input == "-" else args.input
    chunks = text.split(f"\n{SPLIT_MARKER}\n") if args.split_input_file else [text]
    outputs: list[str] = []
    modules: list[ModuleOp] = []
    line = 0
    for chunk in chunks:
        try:
            modules.append(_process(chunk, weights, spec, args.report))
            outputs.append(module_to_text(modules[-1]))
        except (NNCError, ParseError, VerifyException) as err:
            message = f"error: {_one_line(err, name, line)}"
            if not args.verify_diagnostics:
                raise UserError(message.removeprefix("error: ")) from None
            outputs.append(message + "\n")
        line += chunk.count("\n") + 2  # the chunk plus the separator line
    if len(modules) == 1 == len(outputs) and args.output != "-":
        save_text(modules[0], args.output)  # large weights go to the side-car file
    else:
        _write(args.output, f"{SPLIT_MARKER}\n".join(outputs))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nnc-opt`` console script; returns the exit status."""
    args = _arg_parser().parse_args(argv)
    try:
        return _run(args)
    except UserError as err:
        print(f"nnc-opt: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
