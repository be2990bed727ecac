"""Orchestration behind the public API and the ``nnc`` command line.

``compile_model`` is the pipeline as one straight-line function: check the options,
import the ONNX model, run the passes of the -O level (or the caller's spec) with the
batch size fixed, and build native code. ``compile`` builds for the host, links a shared
library in a private temporary directory and loads it; ``load_library`` wraps an existing
library. Both return a ``CompiledModel``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnc.errors import InvalidOptionError, TargetError
from nnc.profiling import ProfileTable
from nnc.report import CompileReport, layer_infos, module_weight_bytes
from nnc.runtime.library import NativeLibrary, TensorInfo, render_header

if TYPE_CHECKING:
    import onnx
    from xdsl.dialects.builtin import ModuleOp

    from nnc.backends.llvm.targets import Target

#: Accepted ``quant`` values (``None`` means "none").
QUANT_MODES = (
    "none",
    "int8",
    "int8-dynamic",
    "int8-weight",
    "int4-weight",
    "fp16",
    "bf16",
    "mixed",
)
#: Accepted ``granularity`` values ("" = the mode's default).
GRANULARITIES = ("per-tensor", "per-channel", "per-group")
#: Activation layouts of ``--layout`` (nchwc: the ``nchwc-layout`` pass).
LAYOUTS = ("nchw", "nchwc")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class Compilation:
    """Everything one compilation produced (``build`` is None when not built)."""

    module: ModuleOp
    build: Any
    report: CompileReport
    target: Target | None


def load(model: str | os.PathLike | onnx.ModelProto) -> ModuleOp:
    """Import an ONNX model (path or ModelProto) into an nn-dialect module; a ``.nncz``
    compressed model file (``--emit nncz``) is decoded instead (weights expanded here,
    at compile time). No passes run.

    Raises ModelLoadError (missing/corrupt file) or UnsupportedOpError (naming the node).
    """
    if isinstance(model, str | os.PathLike) and os.fspath(model).endswith(".nncz"):
        from nnc.compress.nncz import load_nncz

        return load_nncz(model)
    from nnc.frontends.onnx import import_onnx

    return import_onnx(model)


def check_options(opt_level: int, quant: str | None, prefix: str, batch: int) -> None:
    """Reject bad option values before any expensive work (InvalidOptionError)."""
    if isinstance(opt_level, bool) or opt_level not in (0, 1, 2, 3):
        raise InvalidOptionError(f"unknown optimisation level -O{opt_level} (use 0..3)")
    if quant not in (None, *QUANT_MODES):
        raise InvalidOptionError(
            f"unknown --quant mode '{quant}' (choose from {', '.join(QUANT_MODES)})"
        )
    if not isinstance(prefix, str) or not _IDENTIFIER.match(prefix):
        raise InvalidOptionError(
            f"--prefix '{prefix}' is not a C identifier (letters, digits, '_'; no leading digit)"
        )
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidOptionError(f"--batch must be a positive integer, got {batch!r}")


def check_threads(threads: int | None) -> int:
    """The backend's thread setting for ``threads`` (None = all cores = 0; N >= 1)."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidOptionError(f"--threads must be a positive integer, got {threads!r}")
    return threads


def resolve_target(target: str | None, mcpu: str | None) -> Target | None:
    """The backend Target for ``--target``/``--mcpu`` (TargetError if unknown); None: host."""
    if target is None and mcpu is None:
        return None
    from nnc.backends.llvm.targets import parse_target

    return parse_target(target, mcpu)


def compile_model(
    model: str | os.PathLike | onnx.ModelProto,
    *,
    opt_level: int = 3,
    quant: str | None = None,
    calibration: Any = None,
    calib_method: str = "minmax",
    granularity: str | None = None,
    group_size: int | None = None,
    symmetric: bool | None = None,
    max_error: float | None = None,
    size_budget: float | None = None,
    target: str | None = None,
    mcpu: str | None = None,
    prefix: str = "nnc",
    passes: str | None = None,
    batch: int = 1,
    build: bool = True,
    conv_algo: str | None = None,
    threads: int | None = None,
    profile: bool = False,
    compress: str | None = None,
    layout: str = "nchw",
) -> Compilation:
    """Import, optimise and (if ``build``) compile ``model``; see ``nnc.compile``."""
    start = time.perf_counter()
    # 1. Options first: a typo should not cost an import.
    check_options(opt_level, quant, prefix, batch)
    _with_conv_algo("", conv_algo)  # validates the value
    if layout not in LAYOUTS:
        raise InvalidOptionError(f"unknown --layout '{layout}' (choose from {', '.join(LAYOUTS)})")
    n_threads = check_threads(threads)
    if calibration is not None and quant in (None, "none"):
        raise InvalidOptionError("--calibration is only used with --quant (e.g. --quant int8)")
    quant_opts = _quant_options(quant, calib_method, granularity, group_size, symmetric)
    quant_opts.update(_mixed_options(quant, calibration, max_error, size_budget))
    tgt = resolve_target(target, mcpu)
    # 2. Import; remember the weight size to report what compression saved.
    module = load(model)
    weight_bytes_before = module_weight_bytes(module)
    # 3. Passes: the -O pipeline, or the caller's spec with the batch fixed first.
    from nnc.passes.pipelines import pipeline_for_level, run_pipeline

    spec = pipeline_for_level(opt_level, batch) if passes is None else _with_batch(passes, batch)
    spec = _with_conv_algo(spec, conv_algo)
    # Conv algorithms are picked last: after compression and quantization (Winograd ops
    # would hide convs, their sparsity and their weights from those passes), and only for
    # native code unless forced: a model written out (--emit mlir/onnx/nncz) keeps plain
    # convs, so the target that compiles it chooses and its .nncz codes the real weights.
    spec, deferred_algo = _split_conv_algo(spec)
    if deferred_algo and not build and conv_algo is None:
        deferred_algo = ""
    compression_lines: list[str] = []
    if compress is not None:  # compression passes inserted before fuse-activation
        from nnc.compress.spec import run_compressed
        from nnc.report import compression_table

        pass_report, compressed = run_compressed(module, spec, compress)
        spec = f"{spec} + --compress {compressed.pipeline}"
        compression_lines = compression_table(compressed.rows, compressed.nncz_bytes)
    else:
        pass_report = run_pipeline(module, spec)
    if passes is None and _has_qdq(module):  # an already-quantized (QDQ) model
        qdq_spec = "fuse-qdq,fold-qdq,dce"
        run_pipeline(module, qdq_spec, pass_report)
        spec = f"{spec},{qdq_spec}"
    quant_lines: list[str] = []
    if quant not in (None, "none"):  # after the float optimisations: ranges fit final layers
        from nnc.quant.driver import quantize_module

        qspec, quant_lines = quantize_module(
            module, quant, calibration, report=pass_report, **quant_opts
        )
        spec = f"{spec},{qspec}"
    if deferred_algo:
        run_pipeline(module, f"{deferred_algo},dce", pass_report)
        spec = f"{spec},{deferred_algo},dce"
    if layout == "nchwc":  # after select-conv-algo: Winograd/FFT convs keep NCHW
        run_pipeline(module, "nchwc-layout,dce", pass_report)
        spec = f"{spec},nchwc-layout,dce"
    # 4. Native code (the backend plans memory and emits kernels for the target).
    result = None
    if build:
        from nnc.backends.llvm import build as build_native

        result = build_native(
            module,
            target=tgt,
            prefix=prefix,
            opt_level=opt_level,
            threads=n_threads,
            profile=profile,
        )
    report = CompileReport(
        layers=layer_infos(module),
        weight_bytes_before=weight_bytes_before,
        workspace_bytes=getattr(result, "peak_bytes", None),
        intermediate_bytes=getattr(result, "intermediate_bytes", None),
        scratch_bytes=getattr(result, "scratch_bytes", None),
        kernel_count=getattr(result, "kernel_count", None),
        compile_seconds=time.perf_counter() - start,
        pipeline=spec,
        pass_lines=list(pass_report.lines),
        quant_lines=quant_lines,
        compression_lines=compression_lines,
    )
    return Compilation(module, result, report, tgt)


def _split_conv_algo(spec: str) -> tuple[str, str]:
    """(``spec`` without its select-conv-algo item, that item or "")."""
    match = re.search(r",?(select-conv-algo(\{[^}]*\})?)", spec)
    if match is None:
        return spec, ""
    return (spec[: match.start()] + spec[match.end() :]).strip(","), match.group(1)


def _has_qdq(module: ModuleOp) -> bool:
    """True when ``module`` holds quantize/dequantize ops (an imported quantized model)."""
    from nnc.ir.ops_quant import DequantizeOp, QuantizeOp

    return any(isinstance(op, QuantizeOp | DequantizeOp) for op in module.walk())


def _quant_options(
    quant: str | None,
    method: str,
    granularity: str | None,
    group_size: int | None,
    symmetric: bool | None,
) -> dict[str, Any]:
    """Check the quantization options (InvalidOptionError); keyword arguments for
    ``nnc.quant.driver.quantize_module``."""
    from nnc.quant.methods import METHODS

    if method not in METHODS:
        raise InvalidOptionError(
            f"unknown --calib-method '{method}' (choose from {', '.join(METHODS)})"
        )
    if granularity not in (None, "", *GRANULARITIES):
        raise InvalidOptionError(
            f"unknown --granularity '{granularity}' (choose from {', '.join(GRANULARITIES)})"
        )
    if group_size is not None and (
        isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
    ):
        raise InvalidOptionError(f"--group-size must be a positive integer, got {group_size!r}")
    if granularity == "per-group" and quant in ("int8", "int8-dynamic", "mixed"):
        raise InvalidOptionError(
            f"--granularity per-group needs a weight-only mode (int8-weight, int4-weight), "
            f"not --quant {quant}"
        )
    return {
        "method": method,
        "granularity": granularity or "",
        "group_size": group_size,
        "symmetric": None if symmetric is None else bool(symmetric),
    }


def _mixed_options(
    quant: str | None, calibration: Any, max_error: Any, size_budget: Any
) -> dict[str, Any]:
    """Check the --quant mixed budgets (InvalidOptionError); their keyword arguments."""
    if quant != "mixed":
        if max_error is not None or size_budget is not None:
            flag = "--max-error" if max_error is not None else "--size-budget"
            raise InvalidOptionError(f"{flag} is only used with --quant mixed")
        return {}
    if max_error is None and size_budget is None:
        raise InvalidOptionError("--quant mixed needs --max-error X and/or --size-budget MIB")
    checks = (
        ("--max-error", max_error, 0.0, "a finite number >= 0"),
        ("--size-budget", size_budget, 1e-300, "a positive number of MiB"),
    )
    for flag, value, low, what in checks:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (number and math.isfinite(value) and value >= low):
            raise InvalidOptionError(f"{flag} must be {what}, got {value!r}")
    if calibration is None:
        raise InvalidOptionError(
            "--quant mixed needs --calibration data (sensitivities and the error budget are "
            "measured on it)"
        )
    return {"max_error": max_error, "size_budget": size_budget}


def _with_conv_algo(spec: str, conv_algo: str | None) -> str:
    """``spec`` with ``select-conv-algo{algo=conv_algo}`` replacing its own or appended."""
    if conv_algo is None:
        return spec
    from nnc.passes._conv_algos import ALGOS

    if conv_algo not in ALGOS:
        raise InvalidOptionError(
            f"unknown --conv-algo '{conv_algo}' (choose from {', '.join(ALGOS)})"
        )
    forced = f"select-conv-algo{{algo={conv_algo}}}"
    if "select-conv-algo" in spec:
        return re.sub(r"select-conv-algo(\{[^}]*\})?", forced, spec)
    return f"{spec},{forced}" if spec.strip() else forced


def _with_batch(passes: str, batch: int) -> str:
    """``passes`` preceded by ``specialize-shapes{batch=N}`` unless it already has one."""
    if "specialize-shapes" in passes:
        return passes
    head = f"specialize-shapes{{batch={batch}}}"
    return f"{head},{passes}" if passes.strip() else head


def compile(
    model: str | os.PathLike | onnx.ModelProto,
    opt_level: int = 3,
    quant: str | None = None,
    calibration: Any = None,
    calib_method: str = "minmax",
    granularity: str | None = None,
    group_size: int | None = None,
    symmetric: bool | None = None,
    max_error: float | None = None,
    size_budget: float | None = None,
    target: str | None = None,
    mcpu: str | None = None,
    prefix: str = "nnc",
    passes: str | None = None,
    batch: int = 1,
    conv_algo: str | None = None,
    threads: int | None = None,
    profile: bool = False,
    compress: str | None = None,
    layout: str = "nchw",
) -> CompiledModel:
    """Compile an ONNX model to native code for this machine and load it.

    Steps: import -> the -O``opt_level`` pass pipeline (or the ``passes`` spec instead,
    with ``specialize-shapes{batch=N}`` first) -> LLVM build for the host -> shared
    library in a private temporary directory -> loaded with ctypes.

    ``quant``: none, int8 (static; ``calibration`` = .npz path, mapping name -> samples
    or iterable of feeds; without it, dynamic), int8-dynamic, int8-weight, int4-weight,
    fp16, bf16, with ``calib_method`` (minmax, percentile, entropy, mse), ``granularity``
    (per-tensor, per-channel, per-group), ``group_size`` (default 128 for int4-weight,
    else 32) and ``symmetric`` (None: u8 activations, symmetric weights); see
    docs/quantization.md. Quantized ops without a native kernel raise UnsupportedOpError.
    ``quant="mixed"`` (needs ``calibration``) keeps the most sensitive layers float (and
    may use int4 weight-only for the least sensitive) to meet ``max_error`` (the model's
    output error, relative RMS on the calibration data) and/or ``size_budget`` (weights
    in MiB).
    ``target``/``mcpu`` must describe code this machine can run (TargetError otherwise);
    use the ``nnc`` command line to cross-compile. Every option problem raises an
    NNCError subclass with a one-line message.

    ``conv_algo`` (auto, autotune, direct, im2col, winograd2, winograd4, fft) runs the
    ``select-conv-algo{algo=...}`` pass after the pipeline (replacing the pipeline's own
    select-conv-algo, if any); None leaves the pipeline as it is.

    ``threads``: threads of the generated code (caller included); None = all cores of
    the machine running it (resolved when the library first runs), 1 = serial code with
    no threading at all. Change it later with ``CompiledModel.set_num_threads``.
    ``profile=True`` times every op; read ``CompiledModel.profile()``.

    ``layout="nchwc"`` runs the ``nchwc-layout`` pass last (after ``select-conv-algo``):
    chains of direct convs and the elementwise ops between them use the blocked channel
    layout (16 channels innermost), with layout transforms only at the chains' borders.

    ``compress``: a compression spec such as ``"prune=0.8,cluster=4bit,huffman"`` or
    ``"channels=0.25"`` (see ``nnc.compress.spec``); its passes run before
    ``fuse-activation`` and ``report`` gets a per-layer before/after table.
    """
    options = {k: v for k, v in locals().items() if k != "model"}  # the keywords above
    start = time.perf_counter()
    tgt = resolve_target(target, mcpu)
    if tgt is not None and not tgt.is_host:
        raise TargetError(
            f"nnc.compile() runs the model in this process, but target '{target}' is not this "
            f"machine; cross-compile with the command line: nnc MODEL --target {target}"
        )
    comp = compile_model(model, **options)
    from nnc.backends.llvm import write_artifact

    workdir = tempfile.mkdtemp(prefix="nnc-")
    try:
        so_path = os.path.join(workdir, f"lib{prefix}.so")
        write_artifact(comp.build, so_path, "so")
        library = NativeLibrary(so_path, prefix)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    comp.report.compile_seconds = time.perf_counter() - start
    compiled = CompiledModel(
        library,
        module=comp.module,
        report=comp.report,
        header_text=comp.build.header_text,
        steps=comp.build.steps,
    )
    # The mapped library stays valid after its file is gone; the copy is kept for save().
    weakref.finalize(compiled, shutil.rmtree, workdir, True)
    return compiled


def load_library(path: str | os.PathLike, prefix: str | None = None) -> CompiledModel:
    """A CompiledModel over a library built earlier (``nnc`` or ``CompiledModel.save``).

    ``prefix`` is found from the exported ``*_run_with_workspace`` symbol when omitted.
    """
    library = NativeLibrary(path, prefix)
    header_path = os.path.splitext(library.path)[0] + ".h"
    header = None
    if os.path.isfile(header_path):
        with open(header_path) as f:
            header = f.read()
    report = CompileReport(
        workspace_bytes=library.workspace_size,
        note=f"loaded from {os.fspath(path)}: per-layer data is only known at compile time",
    )
    return CompiledModel(library, module=None, report=report, header_text=header)


class CompiledModel:
    """A compiled model loaded in this process: ``run``, ``save``, ``report``, ``module``.

    ``run`` is thread-safe: every call gets its own workspace and outputs.
    """

    def __init__(
        self,
        library: NativeLibrary,
        *,
        module: ModuleOp | None = None,
        report: CompileReport | None = None,
        header_text: str | None = None,
        steps: Sequence[Any] | None = None,
    ):
        self._library = library
        self._steps = list(steps) if steps is not None else None
        self.module = module
        """The nn IR after the passes (None for a model loaded with ``load_library``)."""
        self.report = report if report is not None else CompileReport()
        """Per-layer summary: op, output shape, params/weight bytes, MACs, totals."""
        self._header_text = header_text

    @property
    def prefix(self) -> str:
        """The C symbol prefix of the library."""
        return self._library.prefix

    @property
    def inputs(self) -> list[TensorInfo]:
        """Name, shape and dtype of every input, in order."""
        return list(self._library.inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        """Name, shape and dtype of every output, in order."""
        return list(self._library.outputs)

    @property
    def workspace_size(self) -> int:
        """Bytes of scratch memory one run needs."""
        return self._library.workspace_size

    def run(
        self, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray] | np.ndarray
    ) -> list[np.ndarray]:
        """Run on ``inputs`` (list in model order, or dict by name); returns the outputs.

        Raises InputMismatchError (before native code runs) on a wrong input count,
        name, dtype or shape. Inputs are never cast.
        """
        return self._library.run(inputs)

    __call__ = run

    @property
    def num_threads(self) -> int:
        """Threads the model's parallel loops use (1 for a library without threading)."""
        return self._library.num_threads()

    def set_num_threads(self, n: int) -> int:
        """Use ``n`` threads (caller included; ``n < 1``: the compiled default); returns
        the new count. Waits for a run in progress on another thread to finish."""
        return self._library.set_num_threads(n)

    def profile(self, reset: bool = False) -> ProfileTable:
        """Per-step timing of a library built with ``profile=True`` (mean ms per run since
        the last reset), as a table with op, node, shape, ms, % of total and GFLOP/s.

        ``reset`` clears the counters after reading. Raises NNCError for a library built
        without profiling.
        """
        names, ms = self._library.profile(reset)
        return ProfileTable.build(names, ms, self._steps)

    def save(self, path: str | os.PathLike) -> None:
        """Write the shared library to ``path`` and its C header next to it (``.h``).

        Both files are written under temporary names and renamed into place, so a
        failure leaves no partial file.
        """
        path = os.fspath(path)
        header_path = os.path.splitext(path)[0] + ".h"
        header = self._header_text or render_header(
            self.prefix, self._library.inputs, self._library.outputs
        )
        staging = tempfile.mkdtemp(prefix=".nnc-save-", dir=os.path.dirname(os.path.abspath(path)))
        try:
            tmp_so, tmp_h = os.path.join(staging, "lib.so"), os.path.join(staging, "lib.h")
            shutil.copy(self._library.path, tmp_so)  # with the permission bits
            with open(tmp_h, "w") as f:
                f.write(header)
            os.replace(tmp_so, path)
            os.replace(tmp_h, header_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def __repr__(self) -> str:
        ins = ", ".join(str(t) for t in self._library.inputs)
        outs = ", ".join(str(t) for t in self._library.outputs)
        return f"<CompiledModel prefix={self.prefix!r} inputs=[{ins}] outputs=[{outs}]>"
