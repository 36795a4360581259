"""SQL compiled once per expression shape: DuckDB's fast path past Ibis's compiler, transparent to callers.

Ibis compiles an expression's whole tree on every execution (2-90 ms for a workbench analysis,
more than DuckDB needs to answer it). Notebook queries repeat a few shapes with other values:
another hour, another order id. ``CompiledShapes`` lifts the literal values a caller varies
(``LIFTED`` types: int32, int64 and strings) out of an expression, keys the remaining tree (its
*shape*), compiles each shape once with unique sentinel values in the lifted places, and puts
the current values back into that SQL text in place of the sentinels. The SQL executed is the
SQL Ibis would compile for the expression, values inlined the way Ibis inlines them (integers
as digits, strings quoted with ``'`` doubled): nothing reaches DuckDB as a bound parameter, so
its optimizer sees constants as before.

A shape whose compiled SQL does not show every sentinel verbatim (Ibis computed with a value
instead of writing it down) is compiled every time, as before. ``ExactDuckDBBackend`` and
``_spark.ExactSparkBackend`` (which writes strings the Spark way) use this; on other backends Ibis
compiles each expression as usual.

Examples
--------
>>> import duckdb, ibis
>>> from workbench._backend import ExactDuckDBBackend
>>> con = ExactDuckDBBackend.from_connection(duckdb.connect())
>>> t = con.create_table("t", {"a": [1, 2, 3], "s": ["x", "y", "it's"]})
>>> [t.filter(t.a >= ibis.literal(low, "int64")).count().execute() for low in (1, 2, 3)]
[3, 2, 1]
>>> t.filter(t.s == "it's").a.sum().execute()
3
>>> con.compiled_shapes.compiles
2

SQL compiled on one DuckDB connection serves every other connection of the process (``SHARED``):
the compiled text names tables, never a connection, and the trail's view is named by its
definition (``_backend._temp_view``), so a trail opened again on a new connection compiles nothing.

>>> other = ExactDuckDBBackend.from_connection(duckdb.connect())
>>> u = other.create_table("t", {"a": [5, 6], "s": ["x", "y"]})
>>> u.filter(u.a >= ibis.literal(6, "int64")).count().execute(), other.compiled_shapes.compiles
(1, 0)
"""

from __future__ import annotations

import re
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
from ibis.backends import BaseBackend
from ibis.expr.operations.udf import InputType

from workbench._nodes import FILTERED, derivation

#: Literal types whose values are lifted out of a shape. Smaller integers (``0`` in ``rank == 0``,
#: a ``substr`` length) stay part of the shape: their values cannot be told apart in SQL text.
LIFTED = (dt.Int64, dt.Int32, dt.String)
_INT64_SENTINEL = 7_341_000_000_000_000_000  # 19 digits, as every int64 sentinel below it
_INT32_SENTINEL = 2_041_000_000  # 10 digits
_MAX_LIFTED = 100_000  # per type: keeps every sentinel of a type the same length
_STRING_SENTINEL = "__ledgerline_literal_{}__"
#: Shapes kept per store (least recently used dropped first).
MAX_SHAPES = 256


_MISSING = object()


class Store(OrderedDict[Any, Any]):
    """Compiled SQL by shape: one per ``CompiledShapes`` or ``CompiledCalls``, or one for the process (``SHARED``).

    ``find`` and ``keep`` tolerate another thread (another connection) dropping an entry meanwhile.
    """

    def find(self, key: Any) -> Any:
        """The entry of ``key`` (now the most recently used), or ``_MISSING``."""
        try:
            self.move_to_end(key)
            return self[key]
        except KeyError:
            return _MISSING

    def keep(self, key: Any, entry: Any, max_entries: int) -> None:
        """Store ``entry`` for ``key``; past ``max_entries``, drop the least recently used."""
        self[key] = entry
        while len(self) > max_entries:
            try:
                self.popitem(last=False)
            except KeyError:  # emptied meanwhile
                break


#: The process's stores for DuckDB (``ExactDuckDBBackend``): keys hold no connection (``_shape``
#: keys a backend by its class), so a new connection over the same trail reuses its SQL.
SHARED = {"shapes": Store(), "calls": Store()}


def forget_shared() -> None:
    """Empty the process's stores (``SHARED``): a test counting compilations starts from none."""
    for store in SHARED.values():
        store.clear()


class CompiledShapes:
    """A connection's compiled SQL per expression shape (``MAX_SHAPES`` of them, least recently used dropped).

    ``sql(expr, limit)`` returns what ``backend.compile(expr, limit=limit)`` returns, compiling
    only for a shape not seen before. ``compiles`` counts the compilations done (a test's probe).
    """

    def __init__(self, backend: Any, max_shapes: int = MAX_SHAPES, render: Callable[[Any], str] | None = None,
                 store: Store | None = None) -> None:
        self.backend = backend
        #: A lifted value as the backend's Ibis compiler writes it (``_render``: DuckDB's way).
        self.render = render or _render
        self.max_shapes = max_shapes
        #: Compilations done by this object (a shape found in a shared ``store`` is not one): a test's probe.
        self.compiles = 0
        #: Per shape: the SQL around the values; ``store`` (``SHARED["shapes"]``) when given, shared with
        #: other connections whose backend compiles alike (a key names the backend's class, not the backend).
        self._templates: Store = Store() if store is None else store

    def __len__(self) -> int:
        return len(self._templates)

    def sql(self, expr: Any, limit: int | str | None = None) -> str:
        """The SQL of ``expr`` (an Ibis table expression) with ``limit``, compiled once per shape."""
        return self.prepare(expr, limit)[0]

    def prepare(self, expr: Any, limit: int | str | None = None) -> tuple[str, bool]:
        """``sql(expr, limit)``, and whether ``expr`` holds a node Ibis's pre-execute hooks act on (an
        in-memory table to register, a Python UDF to define): found by the walk that keys the shape,
        so that a query without one skips the hooks' own three walks of the tree."""
        op = expr.op()
        literals: dict[ops.Literal, int] = {}
        hooked: list[ops.Node] = []
        try:
            key = (_shape(op, literals, hooked), limit)
        except RecursionError:  # a very deep tree: compiled as usual
            return self._compile(expr, limit), True
        return self._sql(expr, limit, key, literals), bool(hooked)

    def _sql(self, expr: Any, limit: int | str | None, key: Any, literals: dict[ops.Literal, int]) -> str:
        op = expr.op()
        if len(literals) > _MAX_LIFTED:
            return self._compile(expr, limit)
        entry = self._templates.find(key)
        if entry is _MISSING:
            sentinels = {node: ops.Literal(_sentinel(i, node.dtype), node.dtype) for node, i in literals.items()}
            try:
                shape = op.replace(sentinels) if sentinels else op
                entry = self._template(shape, [self.render(node.value) for node in sentinels.values()], limit)
            except Exception:  # Ibis refused a sentinel value: this shape is compiled every time
                entry = None
            self._templates.keep(key, entry, self.max_shapes)
        if entry is None:  # a shape whose values Ibis does not write verbatim: compiled every time
            return self._compile(expr, limit)
        pieces, places = entry
        return _fill(pieces, places, [self.render(node.value) for node in literals])  # in numbered order

    def _compile(self, expr: Any, limit: int | str | None, flat: bool = False) -> str:
        """Ibis's SQL of ``expr``; for a shape's template (``flat``), the backend's ``template_sql`` if it has
        one (DuckDB's merges nested subqueries once per shape, not on each call)."""
        self.compiles += 1
        template_sql = getattr(self.backend, "template_sql", None) if flat else None
        if template_sql is not None:
            return str(template_sql(expr, limit))
        return str(self.backend.compile(expr, limit=limit))

    def _template(self, shape: Any, tokens: list[str], limit: int | str | None) -> tuple[list[str], list[int]] | None:
        """The SQL of ``shape`` split around the places of its sentinel ``tokens`` (``_fill`` puts values
        there), or None when a token is not written verbatim."""
        template = self._compile(shape.to_expr(), limit, flat=True)
        if not tokens:
            return [template], []
        pattern = re.compile("|".join(_token_pattern(token) for token in tokens))
        # Split once: a regular expression substitution over the SQL on every call cost ~2 ms for an
        # analysis's 7,000 characters.
        number = {token: index for index, token in enumerate(tokens)}
        pieces, places, end = [], [], 0
        for match in pattern.finditer(template):
            pieces.append(template[end:match.start()])
            places.append(number[match.group(0)])
            end = match.end()
        pieces.append(template[end:])
        if set(places) != set(range(len(tokens))):
            return None
        return pieces, places


def _fill(pieces: list[str], places: list[int], rendered: list[str]) -> str:
    """The SQL text ``pieces`` with ``rendered[places[i]]`` between piece ``i`` and ``i + 1``."""
    return pieces[0] + "".join(rendered[place] + piece for place, piece in zip(places, pieces[1:], strict=True))


#: Argument types ``_shape`` keeps as they are without further checks.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _shape(op: ops.Node, literals: dict[ops.Literal, int], hooked: list[ops.Node] | None = None) -> tuple[Any, ...]:
    """A hashable picture of the tree under ``op`` with lifted literals as ``("$", index, dtype)``;
    ``literals`` collects them, numbered in the order first met; ``hooked`` the nodes Ibis's
    pre-execute hooks act on (``_hooked``).

    The picture is flat: one entry per distinct node, in the order met, naming its children by
    their entry's number (a tree shares subtrees; nested tuples would be hashed once per path,
    exponentially many). Two expressions with equal pictures differ only in lifted values, and
    number them alike. Cheaper than ``op.replace`` (no Ibis node is built), which only a shape
    not seen before needs.
    """
    entries: list[Any] = []
    numbers: dict[ops.Node, int] = {}

    def visit(value: Any) -> Any:
        if type(value) in _PLAIN:  # most arguments (names, flags): not a Mapping, whose check is slow
            return value
        if isinstance(value, ops.Node):
            number = numbers.get(value)
            if number is not None:
                return ("#", number)
            relation = isinstance(value, ops.Relation)
            constant = _constant_picture(value) if relation and value is not op else None
            rule = derivation(value) if relation else None
            if constant is not None:
                entry: Any = ("=", constant)
            elif rule is not None and rule is not FILTERED:
                # Made from its parent by ``rule`` alone, which adds no value and no hooked node: its
                # values (the 57 of described rows) need no walk.
                entry = ("derived", rule, visit(value.parent))
            elif isinstance(value, ops.Literal) and _lifted(value):
                entry = ("$", literals.setdefault(value, len(literals)), value.dtype)
            else:
                if hooked is not None and _hooked(value):
                    hooked.append(value)
                entry = (type(value), tuple([visit(argument) for argument in value.__args__]))
            numbers[value] = len(entries)
            entries.append(entry)
            return ("#", numbers[value])
        if isinstance(value, tuple):
            return tuple([visit(item) for item in value])
        if isinstance(value, Mapping):
            return (type(value), tuple([(key, visit(item)) for key, item in value.items()]))
        if isinstance(value, BaseBackend):
            # A table's source: SQL names the table, not the connection, and backends of one class
            # compile alike, so a shape is the same on every connection (``SHARED``).
            return ("backend", type(value))
        return value

    visit(op)
    return tuple(entries)


#: Pictures (``_shape``) of the relations ``remember_relation`` was given (a trail's events view), None
#: for one holding a lifted literal or a hooked node. Weak: an entry goes with its relation.
_PICTURES: weakref.WeakKeyDictionary[ops.Relation, _Picture | None] = weakref.WeakKeyDictionary()


class _Picture:
    """A relation's picture as one entry of a larger one: hashed once (a tuple hashes its items on every
    call), and equal to itself without comparing them."""

    __slots__ = ("entries", "hash")

    def __init__(self, entries: tuple[Any, ...]) -> None:
        self.entries = entries
        self.hash = hash(entries)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, _Picture) and self.hash == other.hash
                                 and self.entries == other.entries)


def remember_relation(relation: ops.Relation) -> None:
    """Picture ``relation`` once: every later ``_shape`` of a tree holding it uses that picture.

    A trail's events view (56 columns, ~60 nodes) is the same object under every query of the
    trail; walking it again on each call cost ~0.2 ms of every query and analysis call. Called
    before any query sees the relation, so that every key naming it is made the same way.
    """
    literals: dict[ops.Literal, int] = {}
    hooked: list[ops.Node] = []
    try:
        picture = _shape(relation, literals, hooked)
    except RecursionError:
        return
    _PICTURES[relation] = None if literals or hooked else _Picture(picture)


def _constant_picture(relation: ops.Relation) -> _Picture | None:
    """The picture ``remember_relation`` made of ``relation``, or None (the caller walks it)."""
    try:
        return _PICTURES.get(relation)
    except TypeError:  # not weakly referable
        return None


def _hooked(node: ops.Node) -> bool:
    """Whether Ibis's pre-execute hooks act on ``node``: an in-memory table (registered with the
    engine) or a UDF other than a builtin (defined in it); builtins (the describe macro's) need nothing."""
    if isinstance(node, ops.InMemoryTable):
        return True
    return isinstance(node, ops.ScalarUDF) and node.__input_type__ != InputType.BUILTIN


def _lifted(node: ops.Literal) -> bool:
    return isinstance(node.dtype, LIFTED) and node.value is not None and not isinstance(node.value, bool)


def _sentinel(index: int, dtype: dt.DataType) -> Any:
    if isinstance(dtype, dt.String):
        return _STRING_SENTINEL.format(index)
    return (_INT64_SENTINEL if isinstance(dtype, dt.Int64) else _INT32_SENTINEL) + index


def _token_pattern(token: str) -> str:
    if token.startswith("'"):
        return re.escape(token)
    return rf"(?<![\w.]){re.escape(token)}(?![\w.])"  # a whole number, not digits of a longer one


def _render(value: Any) -> str:
    """A lifted value as SQL, as Ibis writes it inline (strings quoted, ``'`` doubled; negatives in parentheses)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    number = int(value)
    return str(number) if number >= 0 else f"({number})"


class CompiledCalls:
    """A connection's SQL per analysis call shape, compiled before any Ibis expression is built for the call.

    ``CompiledShapes`` keys an expression already built; building it costs Ibis 2-15 ms per call
    (node validation), most of what a warm analysis costs beyond DuckDB's own work. An analysis
    written as ``cached_table(trail, key, recipes, build, values)`` states its shape up front: the
    ``key`` (the analysis and its structural arguments), the filter recipes' shapes
    (``filters.recipe_shape``), the types of the lifted ``values``, and the trail's events view
    (named by its definition: a trail reopened with other files, hot rows or columns is another view
    and never meets a plan made for the old one; the same trail on a new connection reuses it). The
    first call of a shape builds the expression with sentinel values in the lifted places and
    compiles it with Ibis; every later call of the shape builds nothing: the values are put into
    that SQL text (as ``CompiledShapes`` does) and the result is an ``ops.SQLStringView`` over the
    trail's events, which executes that SQL as it is. The SQL is plain text executed anew each
    time, so DuckDB expands the cold files' glob on every call:
    a cold day added or removed is read as it would be without the cache.
    """

    def __init__(self, backend: Any, max_shapes: int = MAX_SHAPES, store: Store | None = None) -> None:
        self.backend = backend
        self.max_shapes = max_shapes
        #: Expressions built with Ibis by this object (first call of a shape, or a shape that cannot be
        #: cached): a test's probe.
        self.builds = 0
        #: Per shape: the SQL's text around the values, which value goes in each place, the result's
        #: schema, the connection's own functions it calls (``_connection_functions``); ``store``
        #: (``SHARED["calls"]``) when given, shared as ``CompiledShapes`` shares.
        self._entries: Store = Store() if store is None else store
        #: The views this cache made: ``ExactDuckDBBackend`` runs their SQL as it is.
        self.made: weakref.WeakSet[ops.Node] = weakref.WeakSet()

    def __len__(self) -> int:
        return len(self._entries)

    def table(self, events: Any, key: Any, values: list[Any], build: Callable[[list[Any]], Any]) -> Any:
        """``build(literals)`` for ``values`` (``filters.Lit``), from SQL compiled once per (``key``, types)."""
        if any(lit.value is None or isinstance(lit.value, bool) for lit in values):  # not lifted (``_lifted``)
            self.builds += 1
            return build(_literals(values))
        # The view as ``_shape`` pictures it (its name, schema and backend class): a view's name
        # stands for its definition (``_backend._temp_view``), not for one connection's copy of it.
        full_key = (key, _constant_picture(events.op()) or _shape(events.op(), {}),
                    tuple(lit.dtype for lit in values))
        entry = self._entries.find(full_key)
        if entry is _MISSING or (entry is not None and not entry[3] <= _connection_functions(self.backend)):
            # New, or its SQL calls a macro this connection has not defined (building defines it).
            entry = self._template(values, build)
            self._entries.keep(full_key, entry, self.max_shapes)
        if entry is None:  # not cacheable: built for every call
            self.builds += 1
            return build(_literals(values))
        pieces, places, schema, _ = entry
        sql = _fill(pieces, places, [_render(lit.value) for lit in values])
        node = ops.SQLStringView(parent=events.op(), query=sql, schema=schema)
        self.made.add(node)
        return node.to_expr()

    def _template(self, values: list[Any], build: Callable[[list[Any]], Any]
                  ) -> tuple[list[str], list[int], Any, frozenset[str]] | None:
        if len(values) > _MAX_LIFTED:
            return None
        self.builds += 1
        sentinels = [_sentinel(index, lit.ibis_type) for index, lit in enumerate(values)]
        try:
            expr = build([ibis.literal(sentinel, type=lit.ibis_type) for sentinel, lit in zip(sentinels, values,
                                                                                        strict=True)])
            hooked: list[ops.Node] = []
            _shape(expr.op(), {}, hooked)
            if hooked:  # an in-memory table or a Python UDF: Ibis's hooks must see the expression
                return None
            entry = self.backend.compiled_shapes._template(expr.op(), [_render(s) for s in sentinels], None)
        except Exception:  # Ibis refused a sentinel, or computed with one: built for every call
            return None
        if entry is None:
            return None
        pieces, places = entry
        text = "".join(pieces).lower()
        return pieces, places, expr.schema(), frozenset(name for name in _connection_functions(self.backend)
                                                        if name.lower() in text)


def _literals(values: list[Any]) -> list[Any]:
    """The Ibis literals of ``values`` (``filters.Lit``), for an expression built with the call's own values."""
    return [lit.literal() for lit in values]


def _connection_functions(backend: Any) -> frozenset[str]:
    """The macros defined on ``backend``'s connection by building an expression (``describe``'s): SQL
    calling one runs only on a connection that defined it, which a call built elsewhere did not."""
    return frozenset(backend.__dict__.get("_ledgerline_macros", ()))


def cached_table(trail: Any, key: Any, recipes: list[Any], build: Callable[..., Any], values: tuple[Any, ...] = ()
                 ) -> Any:
    """``build(rows, *literals)``: the analysis ``key`` over ``trail.events`` filtered by ``recipes``.

    ``rows`` is ``trail.events`` filtered by the ``recipes`` (``Trail.filter_recipes``), ``literals``
    the Ibis literals of ``values`` (``filters.Lit``: the call's other values, such as an instant).
    ``build`` must be a function of its arguments and ``key`` only (it is called for the first call
    of a shape, with other values). On ``ExactDuckDBBackend`` the SQL is compiled once per shape
    (``CompiledCalls``); elsewhere the expression is built for each call, as written.
    """
    from workbench import filters

    events = trail.events
    shape_values: list[Any] = []
    shapes = tuple(filters.recipe_shape(recipe, shape_values) for recipe in recipes)
    shape_values += values

    def built(literals: list[Any]) -> Any:
        supplied = iter(literals)
        rows = filters.where(events, recipes, supplied)
        return build(rows, *supplied)

    calls = getattr(trail.backend, "compiled_calls", None)
    if calls is None:
        return built(_literals(shape_values))
    return calls.table(events, (key, shapes), shape_values, built)
