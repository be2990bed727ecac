"""Pass pipelines: the -O levels, spec parsing, and running a pipeline on a module.

A pipeline is an xDSL pipeline spec string: comma-separated pass names from
``nnc.passes.PASSES``, each with optional ``{key=value ...}`` options, e.g.
``fold-batchnorm,specialize-shapes{batch=2}``. Read each level top to bottom; the order
is the documentation:

* -O0: only what the backend needs: static shapes.
* -O1: + fold constant subgraphs, simplify algebraic no-ops, drop dead code.
* -O2: + merge duplicates (so equal constants are shared), fold batch norms and
  per-channel scales into the conv/gemm weights.
* -O3: + fuse decomposed GELU chains into one op and Linear layers (matmul + bias) into
  gemm, fuse bias/residual adds and activations into conv/gemm epilogues, choose each
  conv's algorithm (direct / Winograd / FFT) by cost model, then tidy.
"""

from __future__ import annotations

import dataclasses
from typing import get_type_hints

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import ArgSpec, parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError, VerifyException
from xdsl.utils.hints import isa

from nnc.errors import InvalidOptionError
from nnc.ir.dialect import make_context
from nnc.passes import PASSES
from nnc.passes.report import PassReport, collecting

PIPELINES: dict[int, str] = {
    0: "specialize-shapes",
    1: ",".join(
        [
            "specialize-shapes",
            "fold-constants",  # constant subgraphs (shape arithmetic, transposed weights)
            "canonicalize",  # reshape/transpose chains, x+0, x*1 exposed by folding
            "dce",
        ]
    ),
    2: ",".join(
        [
            "specialize-shapes",
            "fold-constants",
            "canonicalize",
            "cse",  # before folding: duplicated constants become one
            "fold-batchnorm",  # conv/gemm -> batch_norm into weights
            "fold-mul-into-conv",  # conv -> per-channel scale into weights
            "dce",
        ]
    ),
    3: ",".join(
        [
            "specialize-shapes",
            "fold-constants",
            "canonicalize",
            "cse",
            "fold-batchnorm",
            "fold-mul-into-conv",
            "fuse-gelu",  # decomposed erf/tanh GELU chains -> one gelu op
            "matmul-bias-to-gemm",  # Linear: matmul + bias (+ activation) -> gemm
            "fuse-activation",  # bias/residual add + activation into the epilogue
            # per-layer conv algorithm by cost model, after fusion (the Winograd/FFT ops
            # carry the fused epilogue); conservative: direct unless 25% cheaper.
            # ResNet-18 224: picks Winograd for the 56x56/28x28/14x14 3x3 layers.
            "select-conv-algo",
            "canonicalize",
            "dce",
        ]
    ),
}


def pipeline_for_level(level: int, batch: int | None = None) -> str:
    """The pipeline spec of -O``level``; ``batch`` sets specialize-shapes' batch size."""
    if level not in PIPELINES:
        raise InvalidOptionError(f"unknown optimisation level -O{level} (use 0..3)")
    spec = PIPELINES[level]
    if batch is not None:
        spec = spec.replace("specialize-shapes", f"specialize-shapes{{batch={batch}}}", 1)
    return spec


def _option_problem(cls: type[ModulePass], spec: ArgSpec) -> str | None:
    """A one-line complaint about an unknown option or a badly typed value, if any."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = get_type_hints(cls)
    for key, values in spec.normalize_parameter_names().parameters.items():
        if key not in fields:
            known = ", ".join(k.replace("_", "-") for k in fields) or "none"
            return f"pass '{spec.name}' has no option '{key}' (options: {known})"
        want = hints[key]
        if not ((len(values) == 1 and isa(values[0], want)) or isa(values, want)):
            got = ",".join(str(v) for v in values) or "nothing"
            return (
                f"pass '{spec.name}': option '{key.replace('_', '-')}' expects "
                f"{getattr(want, '__name__', want)}, got '{got}'"
            )
    return None


def _widen_ints(cls: type[ModulePass], spec: ArgSpec) -> ArgSpec:
    """``spec`` with integer literals given to float options as floats (``margin=1``)."""
    hints = get_type_hints(cls)
    params = {}
    for key, values in spec.normalize_parameter_names().parameters.items():
        takes_int = key in hints and isa(1, hints[key])
        if key in hints and isa(1.0, hints[key]) and not takes_int:
            values = tuple(
                float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values
            )
        params[key] = values
    return ArgSpec(spec.name, params)


def parse_pipeline_spec(spec: str) -> list[ModulePass]:
    """Instantiate the passes of ``spec``; a bad name or option raises InvalidOptionError."""
    try:
        arg_specs = list(parse_pipeline(spec))
    except ArgSpecParseError as err:
        lines = str(err).splitlines()
        column = lines[1].rsplit(":", 1)[-1] if len(lines) > 1 else "?"
        raise InvalidOptionError(
            f"bad pass pipeline '{spec}': {lines[-1].strip()} (column {column})"
        ) from None
    passes = []
    for arg_spec in arg_specs:
        cls = PASSES.get(arg_spec.name)
        if cls is None:
            raise InvalidOptionError(
                f"unknown pass '{arg_spec.name}' (known: {', '.join(sorted(PASSES))})"
            )
        arg_spec = _widen_ints(cls, arg_spec)
        problem = _option_problem(cls, arg_spec)
        if problem is not None:
            raise InvalidOptionError(problem)
        try:
            passes.append(cls.from_spec(arg_spec))
        except ValueError as err:
            raise InvalidOptionError(f"pass '{arg_spec.name}': {err}") from None
    return passes


def run_pipeline(module: ModuleOp, spec: str, report: PassReport | None = None) -> PassReport:
    """Run the passes of ``spec`` on ``module`` in place, verifying after each one.

    Returns ``report`` (a new one if None) with what each pass did. Bad specs raise
    InvalidOptionError before any pass runs; a pass that cannot handle the model raises
    an NNCError. IR failing to verify after a pass is a compiler bug: RuntimeError.
    """
    report = PassReport() if report is None else report
    passes = parse_pipeline_spec(spec)
    ctx = make_context()
    with collecting(report):
        for p in passes:
            p.apply(ctx, module)
            try:
                module.verify()
            except VerifyException as err:
                raise RuntimeError(f"pass '{p.name}' produced invalid IR: {err}") from err
    return report
