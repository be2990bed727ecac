"""The ``nncz`` compressed model file: nn IR text + Deep-Compression-coded weights.

``nnc MODEL --compress 'prune=0.9,cluster=4bit,huffman' --emit nncz`` writes it;
``load(path)`` decodes it back to an nn module, and ``nnc MODEL.nncz -o libnet.so`` /
``nnc.compile("m.nncz")`` compile it (the weights are expanded to dense float32 at
compile time, never at run time).

Layout: an uncompressed (stored) zip holding

* ``model.mlir``: the IR after the passes, large weights as ``@KEY`` handles;
* ``index.json``: per KEY its dtype, shape, encoding and the sizes of its streams;
* ``KEY.*`` blobs.

Each f32 weight takes the smallest of three encodings:

* ``raw``: little-endian float32 (4 bytes per entry);
* ``dense-codebook``: the distinct values (f32 codebook, <= 256 entries) and the
  Huffman-coded index of every entry;
* ``sparse``: the positions of the non-zero entries as Huffman-coded *gaps* (zeros
  skipped since the previous non-zero; a gap >= 255 is split into ``255`` filler symbols
  meaning "skip 255 more", as Deep Compression's relative indices), then the non-zero
  values either as Huffman-coded codebook indices (<= 256 distinct values) or raw f32.

The packed u8 ``indices`` of an ``nn.codebook_gemm`` (``nnc.ir.ops_codebook``) are
stored as the (N, K) index matrix they pack (nibbles unpacked to symbols), encoding
``codebook-indices`` with ``n``, ``bits`` and the smaller of two ``mode`` s:

* ``dense``: every index Huffman-coded (alphabet ``2^bits``);
* ``sparse``: the most frequent index (``background``: the pruned zero's code) left
  implicit, the positions of the others as Huffman-coded gaps (as above) and their
  indices Huffman-coded;

the loader re-packs them into the identical blocked array, so the op is restored
exactly (a packed array that does not re-pack identically is stored raw). Their
codebook (``2^bits`` floats) is small enough to stay inline in the IR text.

Huffman code tables are stored as code lengths (one byte per symbol; canonical codes).
Other non-f32 arrays are stored raw (``np.save``). The pruning masks and codebook attributes
(fine-tuning hooks) are dropped: both are recoverable from the coded weights.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from nnc.compress import huffman
from nnc.ir.builder import main_func
from nnc.ir.ops_codebook import CodebookGemmOp, pack_indices, unpack_indices
from nnc.ir.text import parse_module
from nnc.ir.weights import weight_sidecar

FILLER = 255


@dataclass(frozen=True)
class NNCZStats:
    """Sizes of one written nncz file (bytes)."""

    file_bytes: int
    weight_bytes: int  # coded weight payload (blobs + code tables), without the IR text
    dense_weight_bytes: int  # the same weights as dense float32 (codebook indices: N*K*4)
    encodings: dict[str, int]  # encoding name -> number of weights using it

    @property
    def ratio(self) -> float:
        """Dense float32 weight bytes / coded weight bytes."""
        return self.dense_weight_bytes / max(self.weight_bytes, 1)


def _gaps(positions: np.ndarray) -> np.ndarray:
    """Gap symbols (0..254 final, 255 = skip 255 more) of sorted non-zero positions."""
    gaps = np.diff(np.concatenate([[-1], positions])) - 1
    reps = gaps // FILLER
    out = np.repeat(np.full(len(gaps), FILLER), reps)
    ends = np.cumsum(reps + 1) - 1
    symbols = np.empty(int(reps.sum()) + len(gaps), np.int64)
    mask = np.zeros(len(symbols), bool)
    mask[ends] = True
    symbols[mask] = gaps % FILLER
    symbols[~mask] = out
    return symbols


def _positions(symbols: np.ndarray) -> np.ndarray:
    """Inverse of ``_gaps``."""
    final = symbols != FILLER
    skip = np.cumsum(np.where(final, symbols + 1, FILLER))
    return skip[final] - 1


def _huff(blobs: dict[str, bytes], key: str, symbols: np.ndarray, alphabet: int) -> dict:
    lengths, payload, n = huffman.encode(symbols, alphabet)
    used = int(np.flatnonzero(lengths).max()) + 1 if n else 0
    blobs[f"{key}.len"] = lengths[:used].tobytes()
    blobs[f"{key}.bits"] = payload
    return {"n": n}


def _unhuff(zf: zipfile.ZipFile, key: str, meta: dict) -> np.ndarray:
    lengths = np.frombuffer(zf.read(f"{key}.len"), np.uint8)
    return huffman.decode(lengths, zf.read(f"{key}.bits"), meta["n"])


def _values(blobs: dict[str, bytes], key: str, values: np.ndarray) -> dict:
    uniq, inverse = np.unique(values, return_inverse=True)
    if len(uniq) <= 256:
        blobs[f"{key}.book"] = uniq.astype("<f4").tobytes()
        return {"book": True, **_huff(blobs, f"{key}.idx", inverse, len(uniq))}
    blobs[f"{key}.raw"] = values.astype("<f4").tobytes()
    return {"book": False}


def _read_values(zf: zipfile.ZipFile, key: str, meta: dict) -> np.ndarray:
    if meta["book"]:
        book = np.frombuffer(zf.read(f"{key}.book"), "<f4")
        return book[_unhuff(zf, f"{key}.idx", meta)]
    return np.frombuffer(zf.read(f"{key}.raw"), "<f4")


def encode_array(key: str, arr: np.ndarray) -> tuple[dict, dict[str, bytes]]:
    """The smallest encoding of one array: (index entry, blobs)."""
    meta = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
    if arr.dtype != np.float32:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return {**meta, "enc": "npy"}, {f"{key}.npy": buf.getvalue()}
    flat = arr.reshape(-1)
    options = [({**meta, "enc": "raw"}, {f"{key}.raw": flat.astype("<f4").tobytes()})]
    blobs: dict[str, bytes] = {}
    uniq, inverse = np.unique(flat, return_inverse=True)
    if len(uniq) <= 256:
        blobs[f"{key}.book"] = uniq.astype("<f4").tobytes()
        info = _huff(blobs, f"{key}.idx", inverse, len(uniq))
        options.append(({**meta, "enc": "dense-codebook", **info}, blobs))
    positions = np.flatnonzero(flat)
    if len(positions) < flat.size:
        blobs = {}
        gaps = _huff(blobs, f"{key}.gap", _gaps(positions), FILLER + 1)
        vals = _values(blobs, f"{key}.nz", flat[positions])
        options.append(({**meta, "enc": "sparse", "gap": gaps, "nz": vals}, blobs))
    return min(options, key=lambda o: sum(len(b) for b in o[1].values()))


def encode_indices(key: str, packed: np.ndarray, n: int, bits: int) -> tuple[dict, dict]:
    """The smaller coding of a codebook gemm's packed ``indices`` (N rows, ``bits``-bit):
    (index entry, blobs); stored raw (``encode_array``) if it does not re-pack exactly."""
    idx = unpack_indices(packed, n, bits)
    if not np.array_equal(pack_indices(idx, bits), packed):
        return encode_array(key, packed)
    flat = idx.reshape(-1).astype(np.int64)
    alphabet = 1 << bits
    meta = {"dtype": "uint8", "shape": list(packed.shape), "enc": "codebook-indices"}
    meta |= {"n": n, "bits": bits, "dense_bytes": 4 * idx.size}
    blobs: dict[str, bytes] = {}
    dense = {"mode": "dense", "sym": _huff(blobs, f"{key}.sym", flat, alphabet)}
    options = [({**meta, **dense}, blobs)]
    background = int(np.bincount(flat, minlength=alphabet).argmax()) if flat.size else 0
    positions = np.flatnonzero(flat != background)
    if len(positions) < flat.size:
        blobs = {}
        gaps = _huff(blobs, f"{key}.gap", _gaps(positions), FILLER + 1)
        sym = _huff(blobs, f"{key}.sym", flat[positions], alphabet)
        sparse = {"mode": "sparse", "background": background, "gap": gaps, "sym": sym}
        options.append(({**meta, **sparse}, blobs))
    return min(options, key=lambda o: sum(len(b) for b in o[1].values()))


def _decode_indices(zf: zipfile.ZipFile, key: str, meta: dict) -> np.ndarray:
    n, bits, shape = meta["n"], meta["bits"], tuple(meta["shape"])
    k = shape[1]
    if meta["mode"] == "dense":
        flat = _unhuff(zf, f"{key}.sym", meta["sym"])
    else:
        flat = np.full(n * k, meta["background"], np.int64)
        flat[_positions(_unhuff(zf, f"{key}.gap", meta["gap"]))] = _unhuff(
            zf, f"{key}.sym", meta["sym"]
        )
    packed = pack_indices(flat.reshape(n, k).astype(np.uint8), bits)
    if packed.shape != shape:
        raise ValueError(f"codebook indices {key}: {packed.shape} != {shape}")
    return packed


def decode_array(zf: zipfile.ZipFile, key: str, meta: dict) -> np.ndarray:
    """Inverse of ``encode_array`` (and of ``encode_indices``)."""
    shape, enc = tuple(meta["shape"]), meta["enc"]
    if enc == "codebook-indices":
        return _decode_indices(zf, key, meta)
    if enc == "npy":
        return np.load(io.BytesIO(zf.read(f"{key}.npy")), allow_pickle=False)
    if enc == "raw":
        return np.frombuffer(zf.read(f"{key}.raw"), "<f4").astype(np.float32).reshape(shape)
    if enc == "dense-codebook":
        book = np.frombuffer(zf.read(f"{key}.book"), "<f4")
        return book[_unhuff(zf, f"{key}.idx", meta)].astype(np.float32).reshape(shape)
    out = np.zeros(int(np.prod(shape, dtype=np.int64)), np.float32)
    positions = _positions(_unhuff(zf, f"{key}.gap", meta["gap"]))
    out[positions] = _read_values(zf, f"{key}.nz", meta["nz"])
    return out.reshape(shape)


def _strip_hooks(module: ModuleOp) -> ModuleOp:
    clone = module.clone()
    for op in main_func(clone).body.walk():
        for key in ("nn.prune_mask", "nn.codebook"):
            op.attributes.pop(key, None)
    return clone


def _codebook_indices(module: ModuleOp) -> dict[str, tuple[int, int]]:
    """Sidecar key (weight digest) -> (n, bits) of every codebook gemm's indices."""
    out = {}
    for op in main_func(module).body.walk():
        if isinstance(op, CodebookGemmOp):
            weight = op.indices.owner.prop("value")
            out[weight.data.digest.hex()] = (op.prop("n"), op.prop("bits"))
    return out


def save(module: ModuleOp, path: str | os.PathLike) -> NNCZStats:
    """Write ``module`` as an nncz file; returns its sizes."""
    text = io.StringIO()
    stripped = _strip_hooks(module)
    with weight_sidecar() as arrays:
        Printer(stream=text).print_op(stripped)
    indices = _codebook_indices(stripped)
    index, blobs, counts = {}, {}, {}
    dense = 0
    for key, arr in arrays.items():
        arr = np.asarray(arr)
        if key in indices and arr.dtype == np.uint8:
            meta, b = encode_indices(key, arr, *indices[key])
        else:
            meta, b = encode_array(key, arr)
        index[key] = meta
        blobs.update(b)
        counts[meta["enc"]] = counts.get(meta["enc"], 0) + 1
        dense += meta.get("dense_bytes", arr.nbytes)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("model.mlir", text.getvalue() + "\n")
        zf.writestr("index.json", json.dumps(index, sort_keys=True))
        for name, data in blobs.items():
            zf.writestr(name, data)
    return NNCZStats(
        file_bytes=os.path.getsize(path),
        weight_bytes=sum(len(b) for b in blobs.values()),
        dense_weight_bytes=dense,
        encodings=counts,
    )


def load(path: str | os.PathLike) -> ModuleOp:
    """Read an nncz file back into an nn module (weights decoded to dense arrays)."""
    with zipfile.ZipFile(path) as zf:
        index = json.loads(zf.read("index.json"))
        arrays = {key: decode_array(zf, key, meta) for key, meta in index.items()}
        text = zf.read("model.mlir").decode()
    return parse_module(text, arrays)


def load_nncz(path: str | os.PathLike) -> ModuleOp:
    """``load`` for the compiler: an unreadable or malformed file is a one-line NNCError."""
    from nnc.errors import NNCError

    try:
        return load(path)
    except FileNotFoundError:
        raise NNCError(f"cannot read '{os.fspath(path)}': no such file") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise NNCError(f"'{os.fspath(path)}' is not a valid nncz file: {err}") from None
