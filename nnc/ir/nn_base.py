"""Shared machinery for ``nn`` dialect ops.

Every nn op is declared with the ``nn_op`` class decorator, which turns a compact
declaration (operand names, optional operands, variadic operand, property kinds) into
xDSL IRDL definitions. Each op class implements ONE ``infer`` static method mapping
operand ``TensorSpec``s and Python property values to result specs; it is used by the
constructor (result types), by ``verify_`` (the stored types must equal the inferred
ones) and by shape refinement (``refine_types``).

Property kinds: ``ints`` (i64 dense array), ``int``, ``float`` (f64), ``str``,
``weight`` (``#nn.weight``). Python-side values are read with ``op.prop(name)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from xdsl.dialects.builtin import (
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    f64,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from nnc.ir.types import dtype_of, shape_of, tensor_type
from nnc.ir.weights import WeightAttr


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype name of a tensor value (what ``infer`` works on)."""

    shape: tuple[int, ...]
    dtype: str = "f32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def to_type(self) -> TensorType:
        return tensor_type(self.shape, self.dtype)

    @staticmethod
    def of(value: SSAValue | Attribute) -> TensorSpec:
        return TensorSpec(tuple(shape_of(value)), dtype_of(value))


class ShapeError(VerifyException):
    """Operands or properties of an op are inconsistent (raised by ``infer``)."""


_PROP_ENCODERS = {
    "ints": lambda v: DenseArrayBase.from_list(i64, [int(x) for x in v]),
    "int": lambda v: IntegerAttr(int(v), i64),
    "float": lambda v: FloatAttr(float(v), f64),
    "str": lambda v: StringAttr(str(v)),
    "weight": lambda v: v if isinstance(v, WeightAttr) else WeightAttr.from_array(v),
}
_PROP_CONSTRAINTS = {
    "ints": DenseArrayBase.constr(i64),
    "int": IntegerAttr,
    "float": FloatAttr,
    "str": StringAttr,
    "weight": WeightAttr,
}


def _decode_prop(kind: str, attr: Attribute) -> Any:
    if kind == "ints":
        return tuple(int(x) for x in attr.get_values())
    if kind == "int":
        return int(attr.value.data)
    if kind == "float":
        return float(attr.value.data)
    if kind == "str":
        return attr.data
    return attr  # weight


class NNOp(IRDLOperation):
    """Base of every nn op: Python-valued properties, one shared type inference."""

    OPERANDS: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    VARIADIC: ClassVar[str | None] = None
    PROPS: ClassVar[dict[str, tuple[str, Any]]] = {}  # name -> (kind, default)
    NUM_RESULTS: ClassVar[int] = 1

    def __init__(self, *operands: SSAValue | Operation | None, **props: Any):
        """Build the op from operand values (``None`` for an absent optional one)."""
        values = [_as_value(o) for o in operands]
        py_props = {}
        for key, (_kind, default) in self.PROPS.items():
            value = props.pop(key, default)
            if value is None:
                raise TypeError(f"{self.name}: property '{key}' is required")
            py_props[key] = value
        if props:
            raise TypeError(f"{self.name}: unknown properties {sorted(props)}")
        encoded = {k: _PROP_ENCODERS[self.PROPS[k][0]](v) for k, v in py_props.items()}
        decoded = {k: _decode_prop(self.PROPS[k][0], a) for k, a in encoded.items()}
        grouped = self._group_operands(values)
        specs = [TensorSpec.of(v) for v in values if v is not None]
        results = self.infer(specs, decoded)
        result_types = [r.to_type() for r in results]
        if self.NUM_RESULTS != 1 or self.VARIADIC_RESULTS:
            result_types = [result_types]
        super().__init__(operands=grouped, result_types=result_types, properties=encoded)

    VARIADIC_RESULTS: ClassVar[bool] = False

    def _group_operands(self, values: list[SSAValue | None]) -> list:
        if self.VARIADIC is not None:
            return [values]
        n_req = len(self.OPERANDS)
        if len(values) < n_req or len(values) > n_req + len(self.OPTIONAL):
            raise TypeError(
                f"{self.name}: expected {n_req} operands (+{len(self.OPTIONAL)} optional)"
            )
        grouped: list = list(values[:n_req])
        opt = values[n_req:] + [None] * (len(self.OPTIONAL) - len(values[n_req:]))
        grouped += [[] if v is None else [v] for v in opt]
        return grouped

    # -- Python-side accessors -------------------------------------------------

    def prop(self, name: str) -> Any:
        """The Python value of property ``name`` (tuple, int, float, str or WeightAttr)."""
        return _decode_prop(self.PROPS[name][0], self.properties[name])

    def props_dict(self) -> dict[str, Any]:
        """All properties as Python values."""
        return {k: self.prop(k) for k in self.PROPS}

    def operand_named(self, name: str) -> SSAValue | None:
        """The operand called ``name`` (None for an absent optional operand)."""
        value = getattr(self, name)
        if isinstance(value, SSAValue) or value is None:
            return value
        return value[0] if len(value) else None

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec.of(v) for v in self.operands]

    @staticmethod
    def infer(ins: list[TensorSpec], p: dict[str, Any]) -> list[TensorSpec]:
        """Result specs from operand specs and properties; raise ShapeError if invalid."""
        raise NotImplementedError

    def inferred(self) -> list[TensorSpec]:
        """Result specs recomputed from the current operand types."""
        return type(self).infer(self.input_specs(), self.props_dict())

    def verify_(self) -> None:
        try:
            expected = self.inferred()
        except ShapeError as err:
            raise VerifyException(f"{self.name}: {err}") from None
        actual = [TensorSpec.of(r) for r in self.results]
        if expected != actual:
            raise VerifyException(
                f"{self.name}: result types {actual} differ from inferred {expected}"
            )


def _as_value(o: SSAValue | Operation | None) -> SSAValue | None:
    if o is None or isinstance(o, SSAValue):
        return o
    assert len(o.results) == 1, f"{o.name} has {len(o.results)} results"
    return o.results[0]


def _annotate_class_constants(cls: type) -> None:
    """Mark upper-case class attributes set by decorators as ClassVar for IRDL."""
    if "__annotations__" not in cls.__dict__:
        cls.__annotations__ = {}
    ann = cls.__dict__["__annotations__"]
    for key in list(cls.__dict__):
        if key.isupper() and key not in ann:
            ann[key] = ClassVar[object]


def nn_op(
    name: str,
    operands: Sequence[str] = (),
    optional: Sequence[str] = (),
    variadic: str | None = None,
    props: dict[str, tuple[str, Any]] | None = None,
    num_results: int = 1,
    variadic_results: bool = False,
    pure: bool = True,
):
    """Class decorator: declare an nn op's operands/properties and register it with IRDL."""

    def wrap(cls: type[NNOp]) -> type[NNOp]:
        cls.name = name
        cls.OPERANDS = tuple(operands)
        cls.OPTIONAL = tuple(optional)
        cls.VARIADIC = variadic
        cls.PROPS = dict(props or {})
        cls.NUM_RESULTS = num_results
        cls.VARIADIC_RESULTS = variadic_results
        for operand in operands:
            setattr(cls, operand, operand_def(TensorType))
        for operand in optional:
            setattr(cls, operand, opt_operand_def(TensorType))
        if variadic:
            setattr(cls, variadic, var_operand_def(TensorType))
        if len(optional) > 1:
            cls.irdl_options = (AttrSizedOperandSegments(as_property=True),)
        for key, (kind, _) in cls.PROPS.items():
            setattr(cls, key, prop_def(_PROP_CONSTRAINTS[kind]))
        if variadic_results or num_results != 1:
            cls.outputs = var_result_def(TensorType)
        else:
            cls.result = result_def(TensorType)
        if pure:
            cls.traits = traits_def(Pure())
        _annotate_class_constants(cls)
        return irdl_op_definition(cls)

    return wrap
