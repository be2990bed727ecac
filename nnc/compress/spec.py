"""The ``--compress`` spec: combined compression, applied in a fixed sensible order.

    nnc model.onnx --compress 'prune=0.8,cluster=4bit,huffman' --report
    nnc.compile(model, compress="channels=0.25,lowrank=0.5")

Items (comma separated, any order; the order of application is fixed, below):

=====================  ===============================================================
``channels=R``         structured channel pruning: ``prune-channels{ratio=R}``
``norm=l1|l2``         its channel score (default l1)
``lowrank=R``          low-rank factorization keeping R of the parameters:
                       ``low-rank{ratio=R scope=global}`` (SVD ranks chosen jointly)
``energy=E``           low-rank with ranks by energy instead: ``low-rank{energy=E}``
``cp``                 with ``lowrank=R``: KxK convs by CP decomposition instead of
                       Tucker-2: ``low-rank{ratio=R scope=global method=svd},
                       low-rank{ratio=R method=cp}``
``prune=S``            magnitude pruning to sparsity S: ``prune{sparsity=S scope=global}``
``scope=local|global`` its scope (default global)
``pattern=P``          its pattern: ``unstructured``, ``N:M`` (2:4), ``RxC`` (4x4)
``cluster=Bbit``       weight sharing with 2^B centroids: ``cluster{bits=B}`` (``4bit``/``4``);
                       with B <= 4 it also keeps large gemms (>= 262144 weights: there
                       the codebook kernel is faster) with <= 16 values as 4-bit
                       indices: ``codebook-kernels{min-params=262144 max-bits=4
                       gemm-only=true}``
``sparse``             sparse kernels where they beat dense: ``sparse-kernels``
``codebook``           keep few-valued (clustered) gemm weights as 4/8-bit codebook
                       indices in the library, decoded per tile at run time:
                       ``codebook-kernels`` (after ``sparse-kernels``), every gemm,
                       matmul by a constant and 1x1 conv with >= 1024 weights;
                       ``codebook=off``: none, not even the large gemms ``cluster``
                       implies (f32 weights, e.g. to fine-tune)
(implied)              with ``prune``/``pattern``/``cluster``: ``compact-weights`` last:
                       convs whose weight a sparse-bitmask / codebook format stores in
                       < 0.9x the float32 bytes keep it compressed in the library and
                       decode it once, on the first run (``kernels/compact_conv.py``)
``huffman``            Huffman-code the weights into the nncz file (``--emit nncz``) and
                       report its size
=====================  ===============================================================

Order: structure first (channels, then low rank: both change shapes and run on dense
weights), then magnitude pruning (of the final layers), then weight sharing of the
surviving weights (pruned zeros stay zero), then the sparse kernel choice (it needs the
final values), and Huffman coding last, when the file is written: the Deep
Compression order. The passes go right before ``fuse-activation`` in the -O pipeline
(after batch norms are folded, so norms and singular values see the folded weights), or
at the end of an explicit ``--passes`` pipeline without one.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field

from xdsl.dialects.builtin import ModuleOp

from nnc.errors import InvalidOptionError
from nnc.passes.report import PassReport
from nnc.report import CompressionRow, compression_rows, layer_infos

_ITEM = re.compile(r"([a-z-]+)(?:=(.+))?\Z")

#: Gemms ``cluster=Bbit`` (B <= 4) keeps as 4-bit codebook indices without ``codebook``:
#: from 512x512 the codebook kernel beat the dense one at batch 1 and 4 (README,
#: Compression); smaller gemms are about as fast either way but call-overhead bound.
#: Codebook 1x1 convs and matmuls were ~10-20% slower than dense: only ``codebook``.
IMPLIED_CODEBOOK_PARAMS = 262144


@dataclass
class CompressSpec:
    """A parsed ``--compress`` spec."""

    channels: float | None = None
    norm: str = "l1"
    lowrank: float | None = None
    energy: float | None = None
    cp: bool = False
    prune: float | None = None
    scope: str = "global"
    pattern: str | None = None
    cluster_bits: int | None = None
    sparse: bool = False
    codebook: bool = False
    codebook_off: bool = False
    huffman: bool = False

    def pipeline(self) -> str:
        """The pass pipeline applying the spec, in the fixed order."""
        steps = []
        if self.channels is not None:
            steps.append(f"prune-channels{{ratio={self.channels} norm={self.norm}}}")
        if self.energy is not None:
            steps.append(f"low-rank{{energy={self.energy}}}")
        elif self.lowrank is not None and self.cp:
            steps.append(f"low-rank{{ratio={self.lowrank} scope=global method=svd}}")
            steps.append(f"low-rank{{ratio={self.lowrank} method=cp}}")
        elif self.lowrank is not None:
            steps.append(f"low-rank{{ratio={self.lowrank} scope=global}}")
        if self.prune is not None or self.pattern is not None:
            opts = [f"scope={self.scope}"]
            if self.prune is not None:
                opts.append(f"sparsity={self.prune}")
            if self.pattern is not None:
                opts.append(f'pattern="{self.pattern}"')
            steps.append(f"prune{{{' '.join(opts)}}}")
        if self.cluster_bits is not None and self.codebook and self.prune is not None:
            # pruned zeros + 2^B centroids would need B+1 index bits: reserve a code
            steps.append(f"cluster{{bits={self.cluster_bits} reserve-zero=true}}")
        elif self.cluster_bits is not None:
            steps.append(f"cluster{{bits={self.cluster_bits}}}")
        if self.sparse:
            steps.append("sparse-kernels")
        if self.codebook:
            steps.append("codebook-kernels")
        elif self.cluster_bits is not None and self.cluster_bits <= 4 and not self.codebook_off:
            opts = f"min-params={IMPLIED_CODEBOOK_PARAMS} max-bits=4 gemm-only=true"
            steps.append(f"codebook-kernels{{{opts}}}")
        if self.prune is not None or self.pattern is not None or self.cluster_bits is not None:
            steps.append("compact-weights")  # pruned/clustered convs stored compressed
        return ",".join(steps)


def _number(key: str, text: str | None, lo: float, hi: float) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise InvalidOptionError(f"--compress: {key} expects a number, got '{text}'") from None
    if not lo <= value <= hi:
        raise InvalidOptionError(f"--compress: {key}={value} is out of range [{lo}, {hi}]")
    return value


def parse_compress(spec: str) -> CompressSpec:
    """Parse a ``--compress`` spec (InvalidOptionError naming the bad item)."""
    out = CompressSpec()
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise InvalidOptionError("--compress: empty spec")
    for item in items:
        m = _ITEM.match(item)
        key, value = (m[1], m[2]) if m else (item, None)
        if key == "channels":
            out.channels = _number(key, value, 0.0, 0.99)
        elif key == "norm" and value in ("l1", "l2"):
            out.norm = value
        elif key == "lowrank":
            out.lowrank = _number(key, value, 0.01, 1.0)
        elif key == "energy":
            out.energy = _number(key, value, 0.01, 1.0)
        elif key == "prune":
            out.prune = _number(key, value, 0.0, 1.0)
        elif key == "scope" and value in ("local", "global"):
            out.scope = value
        elif key == "pattern" and value:
            out.pattern = value
        elif key == "cluster":
            bits = (value or "").removesuffix("bit").removesuffix("bits")
            out.cluster_bits = int(_number(key, bits, 1, 8))
        elif key == "sparse" and value is None:
            out.sparse = True
        elif key == "codebook" and value is None:
            out.codebook = True
        elif key == "codebook" and value == "off":
            out.codebook_off = True
        elif key == "huffman" and value is None:
            out.huffman = True
        elif key == "cp" and value is None:
            out.cp = True
        else:
            raise InvalidOptionError(
                f"--compress: unknown item '{item}' (known: channels=R, norm=l1|l2, "
                "lowrank=R, cp, energy=E, prune=S, scope=local|global, pattern=P, "
                "cluster=Bbit, sparse, codebook, codebook=off, huffman)"
            )
    if out.codebook and out.codebook_off:
        raise InvalidOptionError("--compress: codebook and codebook=off contradict each other")
    if out.cp and (out.lowrank is None or out.energy is not None):
        raise InvalidOptionError("--compress: cp needs lowrank=R (and no energy=E)")
    return out


def insert_compression(spec: str, compress: CompressSpec) -> tuple[str, str, str]:
    """(head, compression, tail) pipelines: compression goes before ``fuse-activation``."""
    passes = compress.pipeline()
    parts = _split_top(spec)
    for i, p in enumerate(parts):
        if p.split("{")[0].strip() == "fuse-activation":
            return ",".join(parts[:i]), passes, ",".join(parts[i:])
    return spec, passes, ""


def _split_top(spec: str) -> list[str]:
    """Split a pipeline at top-level commas (not inside ``{...}``)."""
    parts, depth, cur = [], 0, ""
    for ch in spec:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _name_layers(module: ModuleOp) -> None:
    """Give unnamed MAC ops a node name (``gemm0``, ``conv3``...): the before/after table
    matches layers by name, and factorized layers keep it on every factor."""
    from xdsl.dialects.builtin import StringAttr

    from nnc.ir.builder import main_func
    from nnc.report import layer_name

    counts: dict[str, int] = {}
    for op in main_func(module).body.blocks[0].ops:
        if op.name in ("nn.conv", "nn.gemm", "nn.matmul") and not layer_name(op):
            kind = op.name.removeprefix("nn.")
            op.attributes["nn.name"] = StringAttr(f"{kind}{counts.get(kind, 0)}")
            counts[kind] = counts.get(kind, 0) + 1


@dataclass
class CompressionResult:
    """What ``--compress`` did: per-layer before/after rows and the nncz size."""

    spec: str
    pipeline: str
    rows: list[CompressionRow] = field(default_factory=list)
    nncz_bytes: int | None = None
    nncz_dense_bytes: int | None = None


def run_compressed(
    module: ModuleOp, spec: str, compress: str
) -> tuple[PassReport, CompressionResult]:
    """Run ``spec`` with the ``compress`` passes inserted; snapshot the layers around them."""
    from nnc.passes.pipelines import parse_pipeline_spec, run_pipeline

    parsed = parse_compress(compress)
    head, passes, tail = insert_compression(spec, parsed)
    for part in (head, passes, tail):
        if part:
            parse_pipeline_spec(part)  # every option error before any pass runs
    report = PassReport()
    if head:
        run_pipeline(module, head, report)
    _name_layers(module)
    before = layer_infos(module)
    if passes:
        run_pipeline(module, passes, report)
    # Snapshot right after compression: later passes (fusion, algorithm choice) rebuild
    # ops and may drop the node names the rows are matched by.
    result = CompressionResult(compress, passes, compression_rows(before, module))
    if tail:
        run_pipeline(module, tail, report)
    if parsed.huffman:
        from nnc.compress import nncz

        fd, path = tempfile.mkstemp(suffix=".nncz")
        os.close(fd)
        try:
            stats = nncz.save(module, path)
        finally:
            os.unlink(path)
        result.nncz_bytes, result.nncz_dense_bytes = stats.weight_bytes, stats.dense_weight_bytes
    return report, result
