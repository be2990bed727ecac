"""nncz Huffman-codes the indices of ``nn.codebook_gemm`` layers: exact round trips (the
loader rebuilds the identical op), never worse than the packed indices, and a
``codebook`` model's file is no larger than the same model without ``codebook``."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.compiler import compile_model
from nnc.compress import nncz
from nnc.ir.interpret import interpret
from nnc.ir.ops_codebook import CodebookGemmOp, pack_indices
from nnc.ir.text import module_to_text


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 50),
    k=st.integers(1, 40),
    bits=st.integers(1, 8),
    background=st.floats(0, 1),
)
def test_indices_round_trip_and_never_exceed_the_packed_bytes(seed, n, k, bits, background):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 1 << bits, (n, k)).astype(np.uint8)
    idx[rng.random((n, k)) < background] = rng.integers(0, 1 << bits)
    packed = pack_indices(idx, bits)
    meta, blobs = nncz.encode_indices("k", packed, n, bits)
    assert meta["enc"] == "codebook-indices"
    # Huffman is optimal among prefix codes, so never above `bits` per index (+ table)
    assert sum(len(b) for b in blobs.values()) <= packed.nbytes + (1 << bits)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in blobs.items():
            zf.writestr(name, data)
    with zipfile.ZipFile(buf) as zf:
        out = nncz.decode_array(zf, "k", meta)
    assert out.dtype == np.uint8 and np.array_equal(out, packed)


def test_packed_arrays_that_do_not_repack_are_stored_raw():
    packed = np.full((1, 3, 8), 0xFF, np.uint8)  # n=9: columns 9..15 must be index 0
    meta, _ = nncz.encode_indices("k", packed, 9, 4)
    assert meta["enc"] == "npy"


def _save(module, path):
    stats = nncz.save(module, path)
    return stats, nncz.load(path)


def test_codebook_mlp_round_trips_and_is_no_larger(tmp_path, mlp, split):
    plain = compile_model(mlp.onnx(batch=1), compress="cluster=4bit,huffman", build=False)
    cb = compile_model(mlp.onnx(batch=1), compress="cluster=4bit,codebook,huffman", build=False)
    stats, loaded = _save(cb.module, tmp_path / "cb.nncz")
    assert stats.encodings.get("codebook-indices") == 2
    assert module_to_text(loaded) == module_to_text(nncz._strip_hooks(cb.module))
    assert len([op for op in loaded.walk() if isinstance(op, CodebookGemmOp)]) == 2
    x = split.x_test[:1]
    np.testing.assert_array_equal(interpret(loaded, [x])[0], interpret(cb.module, [x])[0])
    base, _ = _save(plain.module, tmp_path / "plain.nncz")
    assert stats.weight_bytes <= base.weight_bytes * 1.02
    assert stats.file_bytes <= base.file_bytes * 1.05
    assert stats.dense_weight_bytes == base.dense_weight_bytes


def test_pruned_codebook_mlp_uses_the_sparse_index_coding(tmp_path, mlp):
    spec = "prune=0.8,cluster=4bit,codebook,huffman"
    cb = compile_model(mlp.onnx(batch=1), compress=spec, build=False)
    plain = compile_model(mlp.onnx(batch=1), compress=spec.replace("codebook,", ""), build=False)
    stats, loaded = _save(cb.module, tmp_path / "cb.nncz")
    with zipfile.ZipFile(tmp_path / "cb.nncz") as zf:
        import json

        modes = [m.get("mode") for m in json.loads(zf.read("index.json")).values()]
    assert modes.count("sparse") == 2
    assert module_to_text(loaded) == module_to_text(nncz._strip_hooks(cb.module))
    base, _ = _save(plain.module, tmp_path / "plain.nncz")
    assert stats.weight_bytes <= base.weight_bytes * 1.05
