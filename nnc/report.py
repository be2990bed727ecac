"""The compile report: per-layer output shapes, weights and MACs, plus totals.

A *layer* is every op of ``main`` except ``nn.constant`` and the return. A layer's
``weight_bytes`` are the bytes of the constants it consumes (each constant is counted
once, at its first consumer, so the per-layer column sums to the model's weights) plus
any weight-valued properties it holds; its ``params`` are the weight values those hold:
their elements, except that compressed layers count what they encode, not how
(``_param_count``): ``nn.sparse_gemm`` its non-zeros (the CSR ``row_ptr``/``col_idx``
are bytes, not params), ``nn.codebook_gemm`` one weight per index (N*K; its centroids
are bytes, not params). MACs are counted for the ops that do multiply-accumulate work
(convolution, gemm, matmul and their compressed forms: ``nn.sparse_gemm`` the
multiplications by non-zeros, ``nn.codebook_gemm`` its dense N*K per row); every other
op counts 0.

``weight_bytes_before`` is the weight size of the imported model, before any pass, so the
report shows what compression passes saved. ``workspace_bytes`` (the planned peak) vs
``intermediate_bytes`` (the sum of every intermediate tensor) plus ``scratch_bytes`` (the
sum of the kernels' scratch buffers) shows what buffer reuse saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation

from nnc.ir.builder import main_func
from nnc.ir.nn_base import NNOp
from nnc.ir.ops_compute import ConstantOp
from nnc.ir.types import is_static, num_elements, shape_of
from nnc.ir.weights import WeightAttr


@dataclass(frozen=True)
class LayerInfo:
    """One row of the report."""

    index: int
    op: str
    name: str
    output_shape: tuple[int, ...]
    params: int
    weight_bytes: int
    macs: int


@dataclass
class CompileReport:
    """What was compiled: layers, weights before/after the passes, memory, time."""

    layers: list[LayerInfo] = field(default_factory=list)
    weight_bytes_before: int | None = None
    workspace_bytes: int | None = None
    intermediate_bytes: int | None = None
    scratch_bytes: int | None = None
    kernel_count: int | None = None
    compile_seconds: float | None = None
    pipeline: str = ""
    pass_lines: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    quant_lines: list[str] = field(default_factory=list)
    """The quantization table and warnings (``nnc.quant.report``), when quantized."""
    compression_lines: list[str] = field(default_factory=list)
    """The per-layer before/after table of ``--compress`` (``compression_table``)."""

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def total_weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def table(self) -> str:
        """The report as an aligned text table followed by summary lines."""
        if not self.layers:
            return "\n".join(self.summary_lines())
        header = ("#", "op", "name", "output shape", "params", "weights", "MACs")
        rows = [header] + [
            (
                str(r.index),
                r.op,
                r.name,
                _shape_text(r.output_shape),
                f"{r.params:,}",
                human_bytes(r.weight_bytes),
                human_count(r.macs),
            )
            for r in self.layers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        right = {0, 4, 5, 6}
        lines = [
            "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths))
            ).rstrip()
            for row in rows
        ]
        return "\n".join(lines + self.summary_lines())

    def summary_lines(self) -> list[str]:
        """The totals, memory and timing lines under the table."""
        lines = [self.note] if self.note else []
        lines += self.quant_lines
        lines += self.compression_lines
        if self.layers or not self.note:  # a loaded library has no per-layer data to total
            lines.append(self._totals_line())
        if self.workspace_bytes is not None:
            lines.append(self._workspace_line())
        if self.kernel_count is not None:
            lines.append(f"kernels: {self.kernel_count}")
        if self.pipeline:
            lines.append(f"pipeline: {self.pipeline}")
        lines += [f"  {name}: {message}" for name, message in self.pass_lines]
        if self.compile_seconds is not None:
            lines.append(f"compile time: {self.compile_seconds:.2f} s")
        return lines

    def _totals_line(self) -> str:
        weights = f"{human_bytes(self.total_weight_bytes)} weights"
        if self.weight_bytes_before:
            ratio = self.weight_bytes_before / max(self.total_weight_bytes, 1)
            weights += f" (imported: {human_bytes(self.weight_bytes_before)}, {ratio:.2f}x smaller)"
        return (
            f"total: {len(self.layers)} layers, {self.total_params:,} params, {weights}, "
            f"{human_count(self.total_macs)} MACs"
        )

    def _workspace_line(self) -> str:
        text = f"workspace: {human_bytes(self.workspace_bytes or 0)} peak"
        if self.intermediate_bytes is None:
            return text
        scratch = self.scratch_bytes or 0
        unshared = self.intermediate_bytes + scratch
        text += f" vs {human_bytes(self.intermediate_bytes)} sum of intermediates"
        if scratch:
            text += f" + {human_bytes(scratch)} kernel scratch"
        if unshared:
            text += f" ({1 - (self.workspace_bytes or 0) / unshared:.0%} saved by reuse)"
        return text

    def __str__(self) -> str:
        return self.table()


def module_weight_bytes(module: ModuleOp) -> int:
    """Bytes of every weight (constants and weight-valued properties) in ``main``."""
    total = 0
    for op in main_func(module).body.walk():
        total += sum(w.array.nbytes for w in _weights_of(op))
    return total


def layer_infos(module: ModuleOp) -> list[LayerInfo]:
    """One ``LayerInfo`` per non-constant op of ``main``, in program order."""
    seen: set[int] = set()
    rows = []
    for op in main_func(module).body.blocks[0].ops:
        if isinstance(op, ConstantOp) or not op.results:
            continue
        params, nbytes = 0, 0
        for weight in _own_weights(op):
            params += _param_count(op, weight.array, None)
            nbytes += weight.array.nbytes
        for i, operand in enumerate(op.operands):
            producer = operand.owner
            if isinstance(producer, ConstantOp) and id(producer) not in seen:
                seen.add(id(producer))
                array = producer.prop("value").array
                params += _param_count(op, array, i)
                nbytes += array.nbytes
        shape = tuple(shape_of(op.results[0]))
        rows.append(
            LayerInfo(len(rows), op.name, layer_name(op), shape, params, nbytes, count_macs(op))
        )
    return rows


def _param_count(op: Operation, array, operand: int | None) -> int:
    """Weight values ``array`` holds for ``op``: operand ``operand`` (None: a
    weight-valued property). Its elements, except for the encodings of compressed
    layers: CSR structure (``nn.sparse_gemm``'s properties) and codebook centroids
    hold none; packed codebook indices hold N*K (one per weight, two per byte at 4 bits).
    """
    if op.name == "nn.sparse_gemm" and operand is None:
        return 0
    if op.name == "nn.codebook_gemm" and operand == 1:
        return int(op.prop("n")) * int(array.shape[1])
    if op.name == "nn.codebook_gemm" and operand == 2:
        return 0
    return int(array.size)


def count_macs(op: Operation) -> int:
    """Multiply-accumulates of one op (0 for ops without MAC work or with dynamic shapes)."""
    rule = _MAC_RULES.get(op.name)
    if rule is None or not all(is_static(tuple(shape_of(v))) for v in (*op.operands, *op.results)):
        return 0
    return int(rule(op))


def _conv_macs(op: Operation) -> int:
    _, cg, kh, kw = shape_of(op.operands[1])
    return num_elements(tuple(shape_of(op.results[0]))) * cg * kh * kw


def _blocked_conv_macs(op: Operation) -> int:
    """NCHWc convs: output (N, M/c, OH, OW, c) holds padding channels; count the M real."""
    m, cg, kh, kw = shape_of(op.operands[1])
    n, _, oh, ow, _ = shape_of(op.results[0])
    return n * m * oh * ow * cg * kh * kw


def _gemm_macs(op: Operation) -> int:
    a = shape_of(op.operands[0])
    k = a[0] if op.prop("trans_a") else a[1]
    return num_elements(tuple(shape_of(op.results[0]))) * k


def _matmul_macs(op: Operation) -> int:
    return num_elements(tuple(shape_of(op.results[0]))) * shape_of(op.operands[0])[-1]


def _wq_macs(op: Operation) -> int:
    """Weight-only layers: output elements * the logical weight's reduction size."""
    w_shape = op.prop("w_shape")
    return num_elements(tuple(shape_of(op.results[0]))) * num_elements(tuple(w_shape[1:]))


def _conv_algo_macs(op: Operation) -> int:
    """Winograd/FFT convs count the MACs of the direct conv they compute (the usual
    convention for GFLOP/s); the multiplications they save are in the pass report."""
    kh, kw = (3, 3) if op.name == "nn.winograd_conv" else op.prop("kernel")
    channels = shape_of(op.operands[0])[1]
    return num_elements(tuple(shape_of(op.results[0]))) * channels * kh * kw


def _sparse_macs(op: Operation) -> int:
    """CSR layers: one MAC per non-zero weight per output row (pixel for 1x1 convs)."""
    row_ptr = op.prop("row_ptr").array
    n = len(row_ptr) - 1
    return num_elements(tuple(shape_of(op.results[0]))) // max(n, 1) * int(row_ptr[-1])


def _codebook_macs(op: Operation) -> int:
    """Codebook layers do the dense gemm: output elements * K (``indices`` is (NB, K, _))."""
    return num_elements(tuple(shape_of(op.results[0]))) * shape_of(op.operands[1])[1]


_MAC_RULES: dict[str, Callable[[Operation], int]] = {
    "nn.conv": _conv_macs,
    "nn.conv_blocked": _blocked_conv_macs,
    "nn.winograd_conv": _conv_algo_macs,
    "nn.fft_conv": _conv_algo_macs,
    "nn.gemm": _gemm_macs,
    "nn.matmul": _matmul_macs,
    "nn.qconv": _conv_macs,
    "nn.qgemm": _matmul_macs,  # x (..., K): K = x.shape[-1]
    "nn.wq_conv": lambda op: _wq_macs(op),
    "nn.wq_gemm": lambda op: _wq_macs(op),
    "nn.sparse_gemm": _sparse_macs,
    "nn.codebook_gemm": _codebook_macs,
}


def _weights_of(op: Operation) -> list[WeightAttr]:
    return [a for a in op.properties.values() if isinstance(a, WeightAttr)]


def _own_weights(op: Operation) -> list[WeightAttr]:
    return _weights_of(op) if isinstance(op, NNOp) else []


def layer_name(op: Operation) -> str:
    """The ONNX node name when the importer recorded one, else empty."""
    for key in ("nn.name", "onnx.name"):
        attr = op.attributes.get(key)
        if isinstance(attr, StringAttr):
            return attr.data
    return ""


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) if d >= 0 else "?" for d in shape) or "scalar"


def human_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def human_count(n: int) -> str:
    """``1234567`` -> ``1.23 M``."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


# -- compression (--compress): per-layer before/after ------------------------------------


@dataclass(frozen=True)
class CompressionRow:
    """One weight layer (by node name) before and after the compression passes.

    ``params_*`` count logical weights (a CSR or codebook layer at its dense (N, K)
    shape, so pruned-dense and pruned-CSR rows agree; ``sparsity`` says how many are
    zero); ``macs_*`` the work its kernel does (a CSR layer: non-zeros only);
    ``bytes_*`` what the library stores (CSR: values + indices; codebook: packed indices
    + centroids; plus biases). ``rank`` is the factorization rank (``nn.rank`` on
    factorized ops; "-": not factorized); ``distinct`` the most distinct non-zero values
    of one weight after (weight sharing), 0 if not shared. ``op_after`` is the (first)
    op carrying the layer after compression (``nn.sparse_gemm``, ``nn.codebook_gemm``...).
    """

    name: str
    op: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    sparsity: float
    rank: str
    distinct: int
    bytes_before: int = 0
    bytes_after: int = 0
    op_after: str = ""


@dataclass
class _After:
    """Accumulated stats of the ops carrying one layer name after compression."""

    op: str
    params: int = 0
    macs: int = 0
    zeros: int = 0
    ranks: list[str] = field(default_factory=list)
    distinct: int = 0
    nbytes: int = 0


def _logical_weights(op: Operation) -> list:
    """The weight arrays of a MAC op as the layer means them: compressed layers
    (``dense_weight()``: CSR, codebook) decoded to (N, K), plus constant biases."""
    decode = getattr(op, "dense_weight", None)
    if decode is None:
        return [
            v.owner.prop("value").array for v in op.operands[1:] if isinstance(v.owner, ConstantOp)
        ]
    bias = op.operand_named("bias")
    extra = [bias.owner.prop("value").array] if bias and isinstance(bias.owner, ConstantOp) else []
    return [decode(), *extra]


def _stored_bytes(op: Operation, seen: set[int]) -> int:
    """Bytes of the constants (once each) and weight properties an op stores."""
    total = sum(w.array.nbytes for w in _own_weights(op))
    for v in op.operands:
        if isinstance(v.owner, ConstantOp) and id(v.owner) not in seen:
            seen.add(id(v.owner))
            total += v.owner.prop("value").array.nbytes
    return total


_UNNAMED = "\0"  # key prefix of layers without a node name (matched in order)


def _weight_stats(module: ModuleOp) -> dict[str, _After]:
    """Layer name -> stats of every MAC op of ``main`` after the passes."""
    import numpy as np
    from xdsl.dialects.builtin import IntegerAttr

    stats: dict[str, _After] = {}
    seen: set[int] = set()
    for op in main_func(module).body.blocks[0].ops:
        if op.name not in _MAC_RULES:
            continue
        name = layer_name(op) or f"{_UNNAMED}{len(stats)}"
        row = stats.setdefault(name, _After(op.name))
        row.macs += count_macs(op)
        row.nbytes += _stored_bytes(op, seen)
        for arr in _logical_weights(op):
            row.params += arr.size
            if arr.ndim >= 2:
                row.zeros += int(arr.size - np.count_nonzero(arr))
                distinct = len(np.unique(arr[arr != 0])) if arr.size <= 1 << 20 else 0
                row.distinct = max(row.distinct, distinct)
        rank = op.attributes.get("nn.rank")
        if isinstance(rank, IntegerAttr):
            row.ranks.append(str(rank.value.data))
    return stats


def compression_rows(before: list[LayerInfo], module: ModuleOp) -> list[CompressionRow]:
    """Rows for every MAC layer of ``before`` (layer infos taken before compression),
    matched by node name with the ops of ``module`` after it (a factorized layer's ops
    share the original name); layers without a name are matched in order."""
    after = _weight_stats(module)
    rows = []
    for info in before:
        if info.op not in _MAC_RULES:
            continue
        key = info.name
        if not key:
            key = next((k for k in after if k.startswith(_UNNAMED)), "")
        a = after.pop(key, _After(info.op))
        shared = a.distinct if a.distinct and a.distinct <= 256 and a.params > 256 else 0
        rows.append(
            CompressionRow(
                info.name,
                info.op,
                info.params,
                a.params,
                info.macs,
                a.macs,
                a.zeros / a.params if a.params else 0.0,
                "/".join(dict.fromkeys(a.ranks)) or "-",
                shared,
                info.weight_bytes,
                a.nbytes,
                a.op,
            )
        )
    return rows


def compression_table(rows: list[CompressionRow], nncz_bytes: int | None = None) -> list[str]:
    """The ``--compress`` report: per layer params/MACs/stored bytes before -> after,
    sparsity, rank, shared values; totals; and the Deep-Compression-style ratio of the
    nncz file."""
    header = ("layer", "op", "params", "MACs", "weights", "sparsity", "rank", "values")
    body = [
        (
            r.name or "?",
            r.op if r.op_after in ("", r.op) else f"{r.op} -> {r.op_after.removeprefix('nn.')}",
            f"{r.params_before:,} -> {r.params_after:,}",
            f"{human_count(r.macs_before)} -> {human_count(r.macs_after)}",
            f"{human_bytes(r.bytes_before)} -> {human_bytes(r.bytes_after)}",
            f"{r.sparsity:.0%}",
            r.rank,
            str(r.distinct) if r.distinct else "-",
        )
        for r in rows
    ]
    table = [header, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["compression (--compress):"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    pb, pa = sum(r.params_before for r in rows), sum(r.params_after for r in rows)
    mb, ma = sum(r.macs_before for r in rows), sum(r.macs_after for r in rows)
    bb, ba = sum(r.bytes_before for r in rows), sum(r.bytes_after for r in rows)
    nz = sum(r.params_after * (1 - r.sparsity) for r in rows)
    lines.append(
        f"  weights: {pb:,} -> {pa:,} params ({int(round(nz)):,} non-zero), "
        f"{human_bytes(bb)} -> {human_bytes(ba)} stored; "
        f"MACs: {human_count(mb)} -> {human_count(ma)}"
        + (f" ({1 - ma / mb:.0%} fewer)" if mb else "")
    )
    if nncz_bytes is not None:
        lines.append(
            f"  nncz (pruning + sharing + Huffman): {human_bytes(nncz_bytes)} of weights vs "
            f"{human_bytes(pb * 4)} dense float32 before: {pb * 4 / max(nncz_bytes, 1):.1f}x "
            f"smaller"
        )
    return lines
