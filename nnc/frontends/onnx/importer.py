"""ONNX -> nn dialect: walk the graph in order, fold what is known, convert the rest.

Contract of ``import_onnx``:

* Model inputs are the graph inputs that are not initializers, named as in ONNX, and
  must be float32 (UnsupportedOpError naming the input otherwise); symbolic or missing
  dimensions become ``DYNAMIC``. Outputs are the graph outputs, in order and by name.
* Initializers (also those listed as graph inputs), ``Constant`` and ``ConstantOfShape``
  results are compile-time known numpy arrays; a node whose present inputs are all
  known and that has a numpy folder is evaluated at import time (shape-chain folding).
  Known float tensors used by nn ops become ``nn.constant`` ops, one per array.
* Nodes whose outputs are never used are skipped.
* Default-domain opsets 9..21 are supported; an op without a converter raises
  ``unsupported op 'Foo' (node 'name', opset 17)``; attribute values nnc cannot handle
  raise an UnsupportedOpError naming the node and attribute.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import onnx
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import VerifyException

from nnc.errors import ModelLoadError, NNCError, UnsupportedOpError
from nnc.frontends.onnx import registry
from nnc.frontends.onnx.context import GraphState, NodeContext, Output
from nnc.frontends.onnx.loader import check_structure, load_model, tensor_array
from nnc.ir.builder import GraphBuilder
from nnc.ir.types import DYNAMIC

_DEFAULT_DOMAINS = ("", "ai.onnx")


def import_onnx(model: str | os.PathLike | onnx.ModelProto) -> ModuleOp:
    """Import an ONNX model (file path or ModelProto) as an nn-dialect module."""
    proto, base_dir, label = load_model(model)
    check_structure(proto, label)
    was_enabled = gc.isenabled()
    gc.disable()  # xDSL op creation allocates many cycles; GC passes double import time
    try:
        return _GraphImporter(proto, base_dir, label).run()
    finally:
        if was_enabled:
            gc.enable()


def default_opset(model: onnx.ModelProto, label: str) -> int:
    """The model's default-domain opset (UnsupportedOpError outside 9..21)."""
    versions = [o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS]
    if not versions:
        raise ModelLoadError(f"invalid {label}: it imports no default-domain (ai.onnx) opset")
    opset = max(versions)
    if not registry.MIN_OPSET <= opset <= registry.MAX_OPSET:
        raise UnsupportedOpError(
            f"{label} uses ai.onnx opset {opset}; nnc supports opsets "
            f"{registry.MIN_OPSET} to {registry.MAX_OPSET}"
        )
    return opset


class _GraphImporter:
    def __init__(self, model: onnx.ModelProto, base_dir: Path | None, label: str):
        self.graph_proto = model.graph
        self.label = label
        self.used: set[str] = set()  # tensor names some live node or the graph reads
        self.state = GraphState(
            GraphBuilder(),
            default_opset(model, label),
            label,
            lambda t: tensor_array(t, base_dir, label),
        )
        self.domains = {o.domain: o.version for o in model.opset_import}

    def run(self) -> ModuleOp:
        g = self.graph_proto
        for t in g.initializer:
            self.state.bind(t.name, self.state.load_tensor(t))
        if g.sparse_initializer:
            raise UnsupportedOpError(f"{self.label}: sparse initializers are not supported")
        for vi in g.input:
            if not self.state.defined(vi.name):
                self._add_input(vi)
        for index, node in self._live_nodes():
            self._convert(node, index)
        outputs = [(vi.name, self._output(vi.name)) for vi in g.output]
        return self.state.builder.finish(outputs)

    def _output(self, name: str):
        if not self.state.defined(name):
            raise ModelLoadError(f"invalid {self.label}: graph output '{name}' is never produced")
        dtype = self.state.spec(name).dtype
        if dtype != "f32":
            raise UnsupportedOpError(
                f"model output '{name}' has dtype {dtype}; only float32 outputs are supported"
            )
        return self.state.value(name, f"graph output '{name}'")

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        ttype = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if ttype is None or ttype.elem_type != onnx.TensorProto.FLOAT:
            kind = onnx.TensorProto.DataType.Name(ttype.elem_type) if ttype else "non-tensor"
            raise UnsupportedOpError(
                f"model input '{vi.name}' has type {kind}; only float32 inputs are supported"
            )
        if not ttype.HasField("shape"):
            raise UnsupportedOpError(f"model input '{vi.name}' has no shape (unknown rank)")
        shape = [d.dim_value if d.HasField("dim_value") else DYNAMIC for d in ttype.shape.dim]
        self.state.bind(vi.name, self.state.builder.add_input(vi.name, shape))

    def _live_nodes(self) -> list[tuple[int, onnx.NodeProto]]:
        """Nodes (with their index) that contribute to a graph output, in graph order."""
        needed = {vi.name for vi in self.graph_proto.output}
        live = []
        nodes = list(self.graph_proto.node)
        for index in range(len(nodes) - 1, -1, -1):
            node = nodes[index]
            if any(o in needed for o in node.output if o):
                live.append((index, node))
                needed.update(i for i in node.input if i)
        self.used = needed
        return live[::-1]

    def _convert(self, proto: onnx.NodeProto, index: int) -> None:
        node = NodeContext(self.state, proto, index)
        if proto.domain not in _DEFAULT_DOMAINS:
            version = self.domains.get(proto.domain, "?")
            raise UnsupportedOpError(
                f"unsupported op '{proto.domain}.{proto.op_type}' (node {node.label}, "
                f"{proto.domain} opset {version})"
            )
        for name in proto.input:
            if name and not self.state.defined(name):
                raise ModelLoadError(
                    f"invalid {self.label}: {node.where} uses tensor '{name}', "
                    "which is not produced by an earlier node, an initializer or an input"
                )
        outputs = self._run_converter(node)
        for i, name in enumerate(proto.output):
            if not name:
                continue
            if i < len(outputs):
                self.state.bind(name, outputs[i])
            elif name in self.used:
                raise node.error(f"output {i} ('{name}') is not supported")

    def _run_converter(self, node: NodeContext) -> list[Output]:
        fold = registry.find_folder(node.op_type, node.opset)
        present = [node.has_input(i) for i in range(node.num_inputs)]
        if fold is not None and all(node.known(i) is not None for i, p in enumerate(present) if p):
            arrays = [node.known(i) for i in range(node.num_inputs)]
            return self._guard(node, lambda: list(fold(node, *arrays)))
        convert = registry.find_converter(node.op_type, node.opset)
        if convert is None:
            hint = ": its inputs must be compile-time constants" if fold is not None else ""
            raise UnsupportedOpError(
                f"unsupported op '{node.op_type}' (node {node.label}, opset {node.opset}){hint}"
            )
        return self._guard(node, lambda: list(convert(node)))

    @staticmethod
    def _guard(node: NodeContext, fn) -> list[Output]:
        """Run a converter/folder; inconsistent shapes become errors naming the node."""
        try:
            return fn()
        except NNCError:
            raise
        except VerifyException as err:  # ShapeError from an op's infer
            raise node.error(" ".join(str(err).split())) from None
        except (ValueError, IndexError) as err:  # numpy folding of inconsistent shapes
            raise node.error(f"cannot evaluate: {' '.join(str(err).split())}") from None
