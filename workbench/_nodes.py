"""Ibis nodes built from parts already checked: the nodes Ibis's constructors make, without their validation.

Ibis validates every node it builds (each argument against its pattern, types against the
operation's rules): 10-30 us a node. A trail filter's ``Filter`` node computes the fields of the
trail's view (56 ``Field`` nodes) each time it is built, and ``with_description`` makes 56 more of
the rows it describes and a projection of 57 values: about half of what a 1-hour query with a
description cost beyond DuckDB's own work (2.3 of 4.6 ms, measured). The builders here are called
only where the arguments are known to be valid (columns of the relation they name, literals of
the column's own type), with the arguments in the form Ibis's validation gives them; for anything
else the callers use Ibis's API. ``tests/unit/workbench/test_compiled.py`` compares each node made
here with the one Ibis's API makes.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping
from typing import Any

import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
from ibis.common.annotations import attribute
from ibis.common.collections import FrozenOrderedDict

#: Schemas of ``project`` results, by the schema of the values' types (the same few, every call).
_SCHEMAS: dict[tuple[tuple[str, dt.DataType], ...], Any] = {}
_MAX_SCHEMAS = 256


def make(cls: type[ops.Node], attributes: Mapping[str, Any] | None = None, /, **arguments: Any) -> Any:
    """``cls(**arguments)`` without validation, as ``Concrete.__init__`` sets it up; ``attributes`` gives
    some computed attributes their value (one known already, such as a view's fields)."""
    names, computed = _layout(cls)
    node = object.__new__(cls)
    values = tuple([arguments[name] for name in names])
    for name, value in zip(names, values, strict=True):
        object.__setattr__(node, name, value)
    object.__setattr__(node, "__args__", values)
    object.__setattr__(node, "__precomputed_hash__", hash((cls, values)))
    for name, annotation in computed:
        if attributes is not None and name in attributes:
            object.__setattr__(node, name, attributes[name])
        else:
            object.__setattr__(node, name, annotation.get_default(name, node))
    return node


@functools.cache
def _layout(cls: type[ops.Node]) -> tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]:
    """``cls``'s argument names and its computed attributes (name, annotation), in Ibis's order."""
    return cls.__argnames__, tuple((name, annotation) for name, annotation in cls.__attributes__.items()
                                   if annotation.has_default())


def fields(relation: ops.Relation) -> FrozenOrderedDict:
    """``relation.fields``: a ``Field`` per column (those it keeps, if it is a ``Filter`` or ``DatabaseTable`` here).

    Kept on the node itself, not in a cache beside it: its fields refer to it, so a cache entry would
    keep a trail's view, and its connection, alive for as long as the process.
    """
    if type(relation) in _KEEPING:
        return relation.fields
    return _fields(relation)


def _fields(relation: ops.Relation) -> FrozenOrderedDict:
    relations = frozenset({relation})  # the attributes Ibis computes for each field: the same set, its type
    names, computed = _layout(ops.Field)
    if (names, tuple(name for name, _ in computed)) != _FIELD_LAYOUT:  # another Ibis: ``make`` follows its layout
        return FrozenOrderedDict({name: make(ops.Field, {"relations": relations, "dtype": dtype}, rel=relation,
                                             name=name) for name, dtype in relation.schema.items()})
    # ``make`` written out for ``Field``: a trail filter makes 56 of them per call (0.15 -> 0.06 ms, measured).
    new, put, field = object.__new__, object.__setattr__, ops.Field
    made = {}
    for name, dtype in relation.schema.items():
        node = new(field)
        arguments = (relation, name)
        put(node, "rel", relation)
        put(node, "name", name)
        put(node, "__args__", arguments)
        put(node, "__precomputed_hash__", hash((field, arguments)))
        put(node, "relations", relations)
        put(node, "dtype", dtype)
        made[name] = node
    return FrozenOrderedDict(made)


#: ``_layout(ops.Field)`` as ``_fields`` writes it out: its arguments, then its computed attributes.
_FIELD_LAYOUT = (("rel", "name"), ("relations", "dtype"))


def literal(value: Any, dtype: dt.DataType) -> Any:
    """``ops.Literal(value, dtype)``: the value normalized as Ibis normalizes it."""
    return make(ops.Literal, value=dt.normalize(dtype, value), dtype=dtype)


class Filter(ops.Filter):  # type: ignore[misc]
    """``ops.Filter`` whose fields are made once, when it is built (``fields``), not by every node built on it.

    Ibis computes a relation's ``fields`` (a validated ``Field`` per column) anew for each use: a
    ``Sort`` or ``Project`` built on a trail filter (``.order_by(...)``, ``with_description``) made the
    56 fields again, 1 to 4 ms of a 1-hour query. Everything else is ``ops.Filter``'s: Ibis's rewrites
    match it as one (a subclass), and its SQL compiler finds its rule by the class name, ``Filter``.
    """

    @attribute
    def fields(self) -> FrozenOrderedDict:  # type: ignore[override]
        return _fields(self)

    def to_expr(self) -> Rows:
        return Rows(self)


class DatabaseTable(ops.DatabaseTable):  # type: ignore[misc]
    """``ops.DatabaseTable`` whose fields are made once (``Filter`` says why): a trail's events view, which
    every trail filter and analysis starts from."""

    @attribute
    def fields(self) -> FrozenOrderedDict:  # type: ignore[override]
        return _fields(self)

    def to_expr(self) -> Rows:
        return Rows(self)


_KEEPING = frozenset({Filter, DatabaseTable})


def filtered(parent: ops.Relation, predicates: tuple[Any, ...]) -> Any:
    """``Filter(parent, predicates)``: ``predicates`` are boolean values of ``parent``'s fields, none a
    reduction; its ``values`` are ``fields(parent)``."""
    return derived(make(Filter, {"values": fields(parent), "schema": parent.schema}, parent=parent,
                        predicates=predicates), FILTERED)


def project(parent: ops.Relation, values: Mapping[str, Any]) -> Any:
    """``ops.Project(parent, values)``: ``values`` are values of ``parent`` (no alias, no sort key)."""
    key = tuple((name, value.dtype) for name, value in values.items())
    schema = _SCHEMAS.get(key)
    if schema is None:
        schema = make(ops.Project, parent=parent, values=FrozenOrderedDict(values)).schema
        if len(_SCHEMAS) >= _MAX_SCHEMAS:
            _SCHEMAS.clear()
        _SCHEMAS[key] = schema
    return make(ops.Project, {"schema": schema}, parent=parent, values=FrozenOrderedDict(values))


#: Relations made here from their parent alone (``parent``, an argument of each) and how: a rule naming no
#: value (the node is the rule applied to the parent), or ``FILTERED`` for a trail filter, whose predicates
#: read the parent's columns and literal values only. Weak: an entry goes with its node.
_DERIVED: weakref.WeakKeyDictionary[ops.Relation, Any] = weakref.WeakKeyDictionary()
FILTERED = ("filtered",)


def derived(node: Any, rule: Any) -> Any:
    """Remember that ``node`` is ``rule`` applied to ``node.parent`` (``derivation``); returns ``node``.

    ``rule`` must determine the node from its parent: equal rules over equal parents make equal nodes
    (``workbench._compiled`` keys a query's SQL by the rule instead of walking the node's values).
    """
    _DERIVED[node] = rule
    return node


def derivation(node: Any) -> Any:
    """The rule ``node`` was made by from its parent (``derived``), or None."""
    try:
        return _DERIVED.get(node)
    except TypeError:  # not weakly referable: not one of ours
        return None


class Rows(ir.Table):  # type: ignore[misc]
    """A table expression whose ``select`` and ``order_by`` of plain column names make their node here.

    A trail's view, a trail filter and ``with_description``'s rows are ``Rows``: a notebook's
    ``trail.filter(...).select("time", ...).order_by("ts_event", ...)`` cost Ibis ~0.6 ms of binding,
    dereferencing and validating the fields of the relation (the 57 of a described one) for the node
    built here from the few fields named. Anything else (values, selectors, keyword names, a name the
    table does not have, a name twice) is Ibis's own method, which builds or refuses it as usual.
    ``tests/unit/workbench/test_compiled.py`` compares each node with the one Ibis makes.
    """

    __slots__ = ()

    def select(self, *exprs: Any, **named_exprs: Any) -> ir.Table:
        names = None if named_exprs else _column_names(self.op(), exprs)
        if names is None:
            return super().select(*exprs, **named_exprs)
        parent = self.op()
        return Rows(derived(project(parent, {name: _field(parent, name) for name in names}), ("select", names)))

    def order_by(self, *by: Any) -> ir.Table:
        names = _column_names(self.op(), by)
        if names is None:
            return super().order_by(*by)
        parent = self.op()
        keys = tuple(make(ops.SortKey, arg=_field(parent, name), ascending=True, nulls_first=False)
                     for name in names)
        node = make(ops.Sort, {"values": fields(parent), "schema": parent.schema}, parent=parent, keys=keys)
        return Rows(derived(node, ("order_by", names)))

    def _find_backends(self) -> tuple[list[Any], bool]:
        """Ibis's ``_find_backends`` (the backends of the tables the tree reads), skipping the nodes made from
        their parent alone (``derived``): they read no other table. Ibis walks every node (the 57 values of
        described rows, ~0.15 ms of every query of them)."""
        node = self.op()
        while derivation(node) is not None:
            node = node.parent
        if type(node) is DatabaseTable:
            return [node.source], False
        return ir.Table(node)._find_backends()


def _column_names(relation: ops.Relation, given: tuple[Any, ...]) -> tuple[str, ...] | None:
    """``given`` if it is one or more distinct names of ``relation``'s columns (and nothing else), else None."""
    if not given or any(type(name) is not str for name in given) or len(set(given)) != len(given):
        return None
    schema = relation.schema
    return given if all(name in schema for name in given) else None


def _field(relation: ops.Relation, name: str) -> Any:
    """``relation``'s field ``name`` (a column it has): kept ones reused (``fields``), others made alone."""
    if type(relation) in _KEEPING:
        return relation.fields[name]
    return make(ops.Field, {"relations": frozenset({relation}), "dtype": relation.schema[name]},
                rel=relation, name=name)
