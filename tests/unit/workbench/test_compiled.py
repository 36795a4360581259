"""DuckDB's fast paths return what the portable path returns: SQL reused per expression shape, the describe macro.

``ExactDuckDBBackend`` compiles each expression shape once (``workbench._compiled``) and
``with_description`` calls a DuckDB macro holding ``describe`` (``workbench.describe``). Every
analysis here runs twice with other values (the second run reuses the first one's SQL) and is
compared with the same expression compiled by Ibis every time (``reuse_compiled_sql = False``)
and with ``describe`` itself.
"""

from __future__ import annotations

import random
import struct

import ibis
import pytest

from workbench import (
    AuditQuery,
    count_by_type,
    open_trail,
    reconstruct_incident,
    signal_conversion,
    state_at,
    trade_lifecycle,
    with_description,
)
from workbench._columns import CHRONOLOGICAL
from workbench._compiled import CompiledShapes, remember_relation
from workbench.describe import describe
from workbench.errors import ResultTruncatedWarning

NS_PER_HOUR = 3_600 * 10**9


def _analyses(trail, day: int, order_ids: list[str]):
    """Each analysis at two sets of values, within the trail's second day (``day``: its midnight), so that
    both cover the same day partitions: (name, expression builder taking the set's index)."""
    def at(hours: float) -> int:
        return day + int(hours * NS_PER_HOUR)

    return [
        ("hour", lambda i: trail.filter(start=at(3 + 10 * i), end=at(4 + 10 * i)).order_by(*CHRONOLOGICAL)),
        ("hour_filtered", lambda i: trail.filter(start=at(i), end=at(12 + i), event_type=["trade.*", "param.*"][i],
                                                 check=False).order_by(*CHRONOLOGICAL)),
        ("count_by_type", lambda i: count_by_type(trail, at(2 * i), at(10 + 2 * i))),
        ("incident", lambda i: reconstruct_incident(trail, at(5 + 8 * i), 30)),
        # Within the day: which earlier days state_at reads depends on the day (``_parameter_index``).
        ("state_at", lambda i: state_at(trail, at(4 + 16 * i))),
        ("conversion", lambda i: signal_conversion(trail, start=at(i), end=at(12 + 3 * i)).summary),
        ("lifecycle", lambda i: trade_lifecycle(trail, order_ids[i])),
    ]


@pytest.fixture
def trail(generated_trail):
    return open_trail(generated_trail.base_path)


def test_every_analysis_reuses_its_sql_and_returns_what_ibis_compiles(trail):
    day = (trail.catalogue.first_ts // (24 * NS_PER_HOUR) + 1) * 24 * NS_PER_HOUR
    order_ids = [row["order_id"] for row in trail.events.filter(trail.events.event_type == "trade.position_closed")
                 .order_by("ts_event").select("order_id").limit(2).to_pyarrow().to_pylist()]
    assert len(order_ids) == 2
    shapes = trail.backend.compiled_shapes
    for name, build in _analyses(trail, day, order_ids):
        compiles = shapes.compiles
        first = build(0).to_pyarrow()
        # trade_lifecycle runs two queries: the one finding the trade's ids (``_id_index``), then its own.
        assert shapes.compiles == compiles + (2 if name == "lifecycle" else 1), name
        fast = [first, build(1).to_pyarrow()]
        assert shapes.compiles == compiles + (2 if name == "lifecycle" else 1), f"{name}: its second run compiled again"
        trail.backend.reuse_compiled_sql = False
        try:
            portable = [build(i).to_pyarrow() for i in (0, 1)]
        finally:
            trail.backend.reuse_compiled_sql = True
        for i in (0, 1):
            assert fast[i].equals(portable[i]), f"{name}, values {i}"
        assert fast[0].num_rows and fast[0] != fast[1], f"{name}: pick values that give two answers"


def test_quotes_and_backslashes_in_lifted_strings_stay_values(trail):
    events = trail.events
    counts = []
    for source in ("x' OR '1'='1", "AuditObserver", "a\\'b", "it's", "AuditObserver"):
        counts.append(events.filter(events.source == source).count().execute())
    assert counts[0] == counts[2] == counts[3] == 0
    assert counts[1] == counts[4] == events.filter(events.source == "AuditObserver").count().execute() > 0
    assert trail.backend.compiled_shapes.compiles <= 3  # one shape, whatever the catalogue queries compiled


def test_a_shape_whose_values_ibis_rewrites_is_compiled_every_time():
    class Rewriting:
        """A backend whose compiler does arithmetic with a value (Ibis does so for some arguments)."""

        def compile(self, expr, limit=None):
            (literal,) = expr.op().find(ibis.expr.operations.Literal)
            return f"SELECT {literal.value + 1}"

    shapes = CompiledShapes(Rewriting())
    t = ibis.table({"a": "int64"}, name="t")
    for value in (5, 7):
        assert shapes.sql(t.filter(t.a > ibis.literal(value, "int64"))) == f"SELECT {value + 1}"
    assert shapes.compiles == 3  # the sentinel's compile, then each value's own


def test_a_shape_whose_sentinel_ibis_refuses_is_compiled_every_time():
    class Refusing:
        """A backend whose compiler parses a value (a sentinel is no date): it refuses the sentinel."""

        def compile(self, expr, limit=None):
            (literal,) = expr.op().find(ibis.expr.operations.Literal)
            if literal.value.startswith("__"):
                raise ValueError(f"not a date: {literal.value}")
            return f"SELECT DATE '{literal.value}'"

    shapes = CompiledShapes(Refusing())
    t = ibis.table({"d": "string"}, name="t")
    for value in ("2026-01-05", "2026-01-06"):
        assert shapes.sql(t.filter(t.d == value)) == f"SELECT DATE '{value}'"


class _IbisDuckDB:
    """A backend that compiles as Ibis compiles for DuckDB (no connection needed)."""

    def compile(self, expr, limit=None):
        return ibis.to_sql(expr, dialect="duckdb")


def test_a_remembered_relation_keys_its_queries_by_its_own_definition():
    # Two tables remembered (as a trail's view is): each query over one gets the SQL of its own table
    # and values, and a second value of a shape compiles nothing.
    shapes = CompiledShapes(_IbisDuckDB())
    tables = [ibis.table({"a": "int64", "b": "string"}, name="t1"), ibis.table({"a": "int64"}, name="t2")]
    for table in tables:
        remember_relation(table.op())
    for table in tables:
        for value in (5, 7):
            expr = table.filter(table.a > ibis.literal(value, "int64")).select("a")
            assert shapes.sql(expr) == ibis.to_sql(expr, dialect="duckdb")
    assert shapes.compiles == 2  # one per table


def test_a_remembered_relation_holding_a_value_is_walked_with_it():
    # A relation with a lifted value in it is no constant: queries over two such relations that differ
    # only in that value each get their own value's SQL, not the first one's.
    shapes = CompiledShapes(_IbisDuckDB())
    t = ibis.table({"a": "int64"}, name="t")
    relations = [t.filter(t.a > ibis.literal(value, "int64")) for value in (5, 7)]
    for relation in relations:
        remember_relation(relation.op())
    for relation in relations:
        expr = relation.select("a").limit(3)
        assert shapes.sql(expr) == ibis.to_sql(expr, dialect="duckdb")
    assert "7" in shapes.sql(relations[1].select("a").limit(3))


def test_a_trails_events_view_is_remembered(trail):
    from workbench._compiled import _constant_picture

    assert _constant_picture(trail.events.op()) is not None


def test_describe_macro_writes_what_describe_writes(trail):
    events = trail.events
    macro = with_description(events).select("stream", "sequence", "description")
    assert "ledgerline_describe_" in str(trail.backend.compile(macro)).lower()
    portable = events.select("stream", "sequence", description=describe(events))
    order = ["stream", "sequence"]
    fast, expected = macro.order_by(*order).to_pyarrow(), portable.order_by(*order).to_pyarrow()
    assert fast.num_rows == expected.num_rows > 1000
    assert fast.equals(expected)


def test_describe_macro_follows_the_columns_a_table_has(trail):
    events = trail.events
    narrow = events.select("event_type", "source", "param_name", "new_value")
    fast = with_description(narrow).to_pyarrow().to_pylist()
    expected = narrow.mutate(description=describe(narrow)).to_pyarrow().to_pylist()
    key = lambda row: tuple(str(value) for value in row.values())  # noqa: E731
    assert sorted(fast, key=key) == sorted(expected, key=key)


def test_the_trail_view_has_the_schema_duckdb_reports(trail):
    """``as_view`` writes the view's schema down instead of asking DuckDB: it must be what DuckDB reports."""
    name = trail.events.op().name
    assert trail.events.schema() == trail.backend.table(name).schema()


#: Doubles whose text is hard to get right: exponents both ways, the largest and smallest, signed zero, NaN, infinities.
EDGE_DOUBLES = [0.0, -0.0, 1.0, -1.0, 100.0, 1e15, 9999999999999998.0, 9007199254740994.0, -9007199254740993.0,
                9999999999999999.0, 1e16, 1e-4, -1e-4, 9.999999999999999e-05, 0.00010000000000000002, 0.5, -2.5,
                1.5e16, -1.05e16, 1.0000000000000002e16, 1e17, 1e21, 1e23,
                12345678901234567890.0, 123456789012345.6, 1.5e-7, 8e-4, 1e-5, -1e-05, 1.25e-3,
                0.30000000000000004, 1e300, -2.5e-300, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308,
                float("inf"), float("-inf"), float("nan"), struct.unpack("d", struct.pack("Q", 0xFFF8000000000000))[0]]


def _doubles() -> list[float | None]:
    rng = random.Random(19)
    values: list[float | None] = [*EDGE_DOUBLES, None]
    for _ in range(5_000):
        values.append(struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0])  # any bit pattern
        values.append(rng.uniform(-1e6, 1e6))
        values.append(10 ** rng.uniform(-20, 25) * rng.choice((1, -1)))
    return values


def test_the_describe_macros_float_function_writes_what_float_text_writes():
    """On DuckDB the describe macro writes doubles with a short macro and a Python function (``float_texts``),
    not ``float_text``'s SQL."""
    import duckdb
    import pyarrow as pa

    from workbench._backend import ExactDuckDBBackend
    from workbench._columns import float_text, float_texts
    from workbench.describe import FLOAT_TEXT_FUNCTION, _register_float_text

    con = duckdb.connect()
    values = _doubles()
    con.register("doubles", pa.table({"i": range(len(values)), "x": pa.array(values, pa.float64())}))
    con.execute("CREATE TABLE v AS SELECT * FROM doubles")
    _register_float_text(con)
    _register_float_text(con)  # a second backend object over the connection: the function is there already
    t = ExactDuckDBBackend.from_connection(con).table("v")
    expected = t.select("i", text=float_text(t.x)).order_by("i").to_pyarrow().column("text").to_pylist()
    fast = [row[0] for row in con.execute(f"SELECT {FLOAT_TEXT_FUNCTION}(x) FROM v ORDER BY i").fetchall()]
    assert fast == expected
    # The Python function alone (the macro sends it only text with an exponent) is right for every double.
    assert float_texts(pa.array(values, pa.float64())).to_pylist() == expected
    assert "0.0008" in fast and "-0.00001" in fast and "10000000000000000" in fast and "-nan" in fast


def test_describe_macro_writes_edge_doubles_as_describe_does():
    import duckdb

    from workbench._backend import ExactDuckDBBackend

    backend = ExactDuckDBBackend.from_connection(duckdb.connect())
    rows = {"event_type": ["trade.signal"] * len(EDGE_DOUBLES), "source": ["s"] * len(EDGE_DOUBLES),
            "strategy_source": ["alpha"] * len(EDGE_DOUBLES), "instrument_id": ["EURUSD.SIM"] * len(EDGE_DOUBLES),
            "signal_value": EDGE_DOUBLES, "confidence": [*EDGE_DOUBLES[1:], EDGE_DOUBLES[0]],
            "acted_on": [True] * len(EDGE_DOUBLES), "i": list(range(len(EDGE_DOUBLES)))}
    table = backend.create_table("signals", ibis.memtable(rows).to_pyarrow(), temp=True)
    macro = with_description(table).order_by("i").description.to_pyarrow().to_pylist()
    portable = table.mutate(description=describe(table)).order_by("i").description.to_pyarrow().to_pylist()
    assert "ledgerline_describe_" in str(backend.compile(with_description(table))).lower()
    assert macro == portable
    assert "alpha signal 0.0008 on EURUSD.SIM (confidence 0.00001): acted on" in macro


def test_the_pre_execute_hooks_run_when_a_query_needs_them():
    """The fast path skips Ibis's pre-execute hooks only for a query with no in-memory table and no UDF
    to define: a memtable is still registered and a Python UDF still defined before the query runs."""
    import duckdb

    from workbench._backend import ExactDuckDBBackend

    backend = ExactDuckDBBackend.from_connection(duckdb.connect())
    table = backend.create_table("t", {"a": [1, 2, 3]}, temp=True)
    shapes = backend.compiled_shapes
    assert shapes.prepare(table.filter(table.a > 1))[1] is False
    assert with_description(backend.create_table("e", {"event_type": ["sys.x"], "source": ["s"]}, temp=True)) \
        .description.to_pyarrow().to_pylist() == ["sys.x from s: {}"]  # a builtin (the macro) needs no hook

    others = ibis.memtable({"a": [2, 3, 4], "b": ["two", "three", "four"]})
    joined = table.join(others, "a").order_by("a")
    assert shapes.prepare(joined)[1] is True
    assert joined.b.to_pyarrow().to_pylist() == ["two", "three"]

    @ibis.udf.scalar.python
    def doubled(value: int) -> int:
        return 2 * value

    with_udf = table.select(d=doubled(table.a)).order_by("d")
    assert shapes.prepare(with_udf)[1] is True
    assert with_udf.d.to_pyarrow().to_pylist() == [2, 4, 6]


def _fast_and_portable(trail, build):
    """``build()`` on the cached path and on the portable one (``reuse_compiled_sql = False``), as Arrow."""
    fast = build().to_pyarrow()
    trail.backend.reuse_compiled_sql = False
    try:
        portable = build().to_pyarrow()
    finally:
        trail.backend.reuse_compiled_sql = True
    return fast, portable


def test_an_analysis_of_a_known_shape_builds_no_expression(generated_trail):
    """After the first call of a shape (``CompiledCalls``), other values build nothing in Ibis: the call
    returns a view of SQL compiled from the analysis's expression, with the same rows as that expression."""
    trail = open_trail(generated_trail.base_path, on_unknown="ignore")  # values matching nothing, quotes
    day = (trail.catalogue.first_ts // (24 * NS_PER_HOUR) + 1) * 24 * NS_PER_HOUR
    calls = trail.backend.compiled_calls
    analyses = [
        ("count_by_type", lambda i: count_by_type(trail, day + i * NS_PER_HOUR, day + (9 + 2 * i) * NS_PER_HOUR)),
        ("count_by_type source", lambda i: count_by_type(trail, day, source=["AuditObserver", "x\\' OR '1'='1"][i])),
        ("incident", lambda i: reconstruct_incident(trail, day + (5 + 8 * i) * NS_PER_HOUR + i, 30 + i)),
        ("incident narrowed", lambda i: reconstruct_incident(trail, day + (5 + 8 * i) * NS_PER_HOUR, 90,
                                                             event_type=["trade.*", "param.*"][i])),
        ("conversion", lambda i: signal_conversion(trail, start=day + i * NS_PER_HOUR,
                                                   end=day + (12 + 3 * i) * NS_PER_HOUR).summary),
        ("not traded", lambda i: signal_conversion(trail, start=day, end=day + (12 + 3 * i) * NS_PER_HOUR).not_traded),
        ("conversion by instrument", lambda i: signal_conversion(
            trail, "instrument_id", start=day, strategy=[["momentum", "it's"], ["breakout", "mean_reversion"]][i]
        ).summary),
    ]
    for name, build in analyses:
        builds = calls.builds
        first = build(0)
        assert calls.builds == builds + 1, name
        second = build(1)
        assert calls.builds == builds + 1, f"{name}: a second call of its shape built an expression"
        assert isinstance(second.op(), ibis.expr.operations.SQLStringView), name
        for i, made in enumerate((first, second)):
            fast, portable = _fast_and_portable(trail, lambda build=build, i=i: build(i))
            assert made.to_pyarrow().equals(portable) and fast.equals(portable), f"{name}, values {i}"
            query = build(i).op().query
            trail.backend.reuse_compiled_sql = False
            try:  # the SQL kept for the expression built with these values (``template_sql``), to the character
                assert query == trail.backend.template_sql(build(i), None), f"{name}, values {i}"
            finally:
                trail.backend.reuse_compiled_sql = True
        assert first.to_pyarrow() != second.to_pyarrow(), f"{name}: pick values that give two answers"
    # AuditQuery.query_time_range: the columns asked and the limit are part of the shape.
    query = AuditQuery(trail)

    def ask(i):
        with pytest.warns(ResultTruncatedWarning):
            return query.query_time_range(day + i * NS_PER_HOUR, day + (6 + i) * NS_PER_HOUR,
                                          event_type=["trade.*", "param.*"][i], columns=["ts_event", "source"],
                                          describe=True, limit=5)

    frames = [ask(0)]
    builds = calls.builds
    frames.append(ask(1))
    assert calls.builds == builds
    trail.backend.reuse_compiled_sql = False
    try:
        assert all(frame.equals(ask(i)) for i, frame in enumerate(frames))
    finally:
        trail.backend.reuse_compiled_sql = True
    assert not frames[0].equals(frames[1]) and len(frames[0]) == 5 and frames[0].attrs["truncated"]
    # Composing over a cached call is an ordinary Ibis expression (the view's SQL as a subquery).
    counts = count_by_type(trail, day, day + 9 * NS_PER_HOUR)
    top = counts.filter(counts["count"] > 1).order_by("event_type").limit(2).to_pyarrow()
    plain = counts.to_pyarrow().to_pylist()
    assert top.to_pylist() == sorted([row for row in plain if row["count"] > 1], key=lambda r: r["event_type"])[:2]
    frame = count_by_type(trail, day, day + 9 * NS_PER_HOUR).to_pandas()
    assert frame.attrs["verification_state"] == trail.verification.state  # the view it reads is the trail's


def test_a_cached_shape_reads_the_files_as_they_are_now(hand_trail):
    """The SQL of a cached shape is run anew on every call, so DuckDB lists the cold files each time: a
    cold day added by the converter, or removed (as retention removes one), is read exactly as the
    expression built for the call reads it; a refreshed trail (a new view) gets a plan of its own."""
    import shutil
    import warnings

    from audit_core.cold.converter import ParquetConverter
    from tests.unit.workbench.conftest import MIDNIGHT
    from workbench import TrailNotVerifiedWarning

    hand_trail.convert(only_jan5=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrailNotVerifiedWarning)  # files are removed below, on purpose
        trail = open_trail(hand_trail.base, verify=False)
        calls = trail.backend.compiled_calls
        window = (MIDNIGHT - NS_PER_HOUR, MIDNIGHT + NS_PER_HOUR)
        cases = {"count_by_type": lambda: count_by_type(trail, *window),
                 "incident": lambda: reconstruct_incident(trail, MIDNIGHT, 10)}

        def answers():
            found = {}
            for name, build in cases.items():
                fast, portable = _fast_and_portable(trail, build)
                assert fast.equals(portable), name
                found[name] = fast
            return found

        before = answers()
        assert sum(before["count_by_type"]["count"].to_pylist()) == hand_trail.events
        builds = calls.builds
        converter = ParquetConverter(hand_trail.base / "hot", hand_trail.base / "cold")
        for path in sorted((hand_trail.base / "hot").glob("*.2026-01-06.*.jsonl")):
            assert converter.convert_file(path).converted  # a new cold day (its hot rows count once)
        assert (hand_trail.base / "cold" / "year=2026" / "month=01" / "day=06").is_dir()
        converted = answers()
        assert converted == before
        shutil.rmtree(hand_trail.base / "cold" / "year=2026" / "month=01" / "day=05")
        removed = answers()
        assert sum(removed["count_by_type"]["count"].to_pylist()) == hand_trail.events - hand_trail.jan5
        assert removed["incident"].num_rows < before["incident"].num_rows
        assert calls.builds == builds  # every answer above came from the plans made for the first
        fresh = trail.refresh()  # reads the hot files of the removed day again: their rows are back
        fast, portable = _fast_and_portable(fresh, lambda: count_by_type(fresh, *window))
        assert fast.equals(portable) and sum(fast["count"].to_pylist()) == hand_trail.events
        assert calls.builds == builds + 1  # a new view: a plan of its own


@pytest.mark.filterwarnings("ignore::workbench.TrailNotVerifiedWarning")  # the hand trail's cold files are unsealed
def test_a_new_connection_reuses_the_sql_of_the_same_trail_only(hand_trail, tmp_path):
    """SQL is kept per process (``_compiled.SHARED``): the same trail opened on a new connection runs
    its queries without compiling or building anything (but a call whose SQL needs a macro the
    connection has yet to define); another trail (other files), or the same
    files with other hot rows, is another view and gets plans of its own. Every answer is the
    portable path's."""
    from tests.unit.workbench.conftest import MIDNIGHT, write_hand_trail

    other = write_hand_trail(tmp_path / "other")
    for written in (hand_trail, other):
        written.convert(only_jan5=True)  # cold files and hot rows both

    def ask(trail, i):
        """A cached analysis and a plain query, each with the values of set ``i``."""
        window = (MIDNIGHT - (1 + i) * NS_PER_HOUR, MIDNIGHT + (30 + i) * NS_PER_HOUR)
        events, low = trail.events, ibis.literal(i, "int64")  # int64: lifted (a small int is shape)
        return {"count_by_type": _fast_and_portable(trail, lambda: count_by_type(trail, *window)),
                # Its SQL calls the describe macro, which each connection defines when it builds the call.
                "incident": _fast_and_portable(trail, lambda: reconstruct_incident(trail, MIDNIGHT, 60 + i)),
                "filter": _fast_and_portable(trail, lambda: events.filter(events.sequence >= low).order_by(
                    "stream", "sequence"))}

    def run(trail, i):
        """The answers of ``ask`` and what the trail's connection compiled and built for them."""
        shapes, calls = trail.backend.compiled_shapes, trail.backend.compiled_calls
        compiles, builds = shapes.compiles, calls.builds
        answers = ask(trail, i)
        for name, (fast, portable) in answers.items():
            assert fast.equals(portable), name
        return answers, shapes.compiles - compiles, calls.builds - builds

    first = open_trail(hand_trail.base)
    answers, _, _ = run(first, 0)
    assert sum(answers["count_by_type"][0]["count"].to_pylist()) == hand_trail.events
    again = open_trail(hand_trail.base)  # a new connection
    assert again.backend.con is not first.backend.con and again.events.op().name == first.events.op().name
    answers, compiles, builds = run(again, 1)
    # The first connection's SQL with other values put in, but the incident's: built once here, since
    # the macro its SQL calls is defined on a connection by building the call (it failed, undefined).
    assert (compiles, builds) == (1, 1)
    assert answers["incident"][0].num_rows > 0
    assert run(again, 0)[1:] == (0, 0)  # now every shape is this connection's too
    assert sum(answers["count_by_type"][0]["count"].to_pylist()) == hand_trail.events

    theirs = open_trail(other.base)  # other files: another view, never the first trail's SQL
    assert theirs.events.op().name != first.events.op().name
    answers, compiles, builds = run(theirs, 1)
    assert compiles == 3 and builds == 2  # the filter, both analyses' first builds: nothing reused

    hand_trail.forget_conversion_of("2026-01-05")  # the same cold files, more hot rows
    changed = open_trail(hand_trail.base)
    assert changed.hot.rows > first.hot.rows and changed.events.op().name != first.events.op().name
    answers, compiles, builds = run(changed, 1)
    assert compiles == 3 and builds == 2
    assert sum(answers["count_by_type"][0]["count"].to_pylist()) == hand_trail.events


def _same_nodes(ours, ibis_made) -> None:
    """``ours`` is ``ibis_made`` in every node: its arguments (what ``==`` compares) and the attributes Ibis
    computes when it builds a node (``values``, ``schema``, ``dtype``, ``shape``, ``relations``), which
    ``workbench._nodes`` sets without Ibis and ``==`` does not compare. A ``_nodes.Filter`` stands for an
    ``ops.Filter`` (its subclass, which keeps its ``fields``: they must be the ones Ibis computes)."""
    from collections.abc import Mapping

    from ibis.common.graph import Node

    from workbench import _nodes

    def kind(node):
        return {_nodes.Filter: ibis.expr.operations.Filter,
                _nodes.DatabaseTable: ibis.expr.operations.DatabaseTable}.get(type(node), type(node))

    pairs, seen = [(ours, ibis_made)], set()
    while pairs:
        a, b = pairs.pop()
        if isinstance(a, Node):
            if (id(a), id(b)) in seen:
                continue
            seen.add((id(a), id(b)))
            assert kind(a) is kind(b), (a, b)
            assert hash(a) == hash((type(a), a.__args__)), a  # Ibis's hash of a node: what sets and dicts use
            pairs += zip(a.__args__, b.__args__, strict=True)
            pairs += [(getattr(a, name, None), getattr(b, name, None)) for name in kind(b).__attributes__]
            if type(a) in (_nodes.Filter, _nodes.DatabaseTable):
                pairs.append((a.fields, b.fields))
        elif isinstance(a, frozenset) and len(a) == 1:  # ``relations``: the one relation a value reads
            assert isinstance(b, frozenset) and len(b) == 1, (a, b)
            pairs.append((next(iter(a)), next(iter(b))))
        elif isinstance(a, tuple):
            assert isinstance(b, tuple) and len(a) == len(b), (a, b)
            pairs += zip(a, b, strict=True)
        elif isinstance(a, Mapping) and not isinstance(a, ibis.Schema):
            assert list(a) == list(b), (a, b)
            pairs += zip(a.values(), b.values(), strict=True)
        else:
            assert a == b, (a, b)


def _ibis_filter(table, recipes):
    """``Table.filter`` of the recipes' predicates, built by Ibis's expression API (``filters.build``)."""
    from workbench import filters

    return table.filter(*[filters.build(table, recipe) for recipe in recipes])


def test_a_trail_filter_is_the_node_ibis_filter_makes(trail):
    """``filters.where`` builds the ``Filter`` node directly (no binding, rewriting or validation): it must be
    the node ``Table.filter`` makes of the same predicates, attributes included, for every kind of recipe
    ``Trail.filter`` writes, over the trail's view and over a table derived from it."""
    from workbench import filters

    first, last = trail.time_range()
    cases = [
        {"start": first, "end": last},
        {"start": first},
        {"end": last},
        {"start": first, "end": first + 1, "event_type": ["trade.*", "sys.*.x", "param.k_change"],
         "exclude": "trade.signal*", "family": ["fill", "order"]},
        {"source": ["AuditObserver", "it's"], "trader": "T", "strategy": "momentum", "instrument": "EURUSD.SIM",
         "param_name": "k", "owner": "o", "correlation_id": ["S-1", "S-2"]},
        {"event_type": "trade.*", "family": "signal"},  # two predicates of one column
    ]
    derived = trail.events.select("ts_event", "event_type", "source", "year", "month", "day",
                                  sequence=trail.events.sequence.cast("int32"))
    for filters_given in cases:
        recipes = trail.filter_recipes(check=False, **filters_given)
        for table in (trail.events, derived):
            if {"trader", "strategy", "instrument", "param_name", "owner", "correlation_id"} & set(filters_given) \
                    and table is derived:
                continue  # columns the derived table does not have
            _same_nodes(filters.where(table, recipes).op(), _ibis_filter(table, recipes).op())
    # A value of another type than its column's: Ibis builds (and checks) that predicate.
    recipe = ("cmp", ">=", "sequence", filters.Lit(5, "int64"))
    _same_nodes(filters.where(derived, [recipe]).op(), _ibis_filter(derived, [recipe]).op())
    assert filters.where(trail.events, []).op() == trail.events.op()


def test_a_trail_filter_and_its_description_validate_no_ibis_node(trail, monkeypatch):
    """``Trail.filter`` and ``with_description`` make their nodes without Ibis's validation (``_nodes``): none
    of the 56 fields of the view a ``Filter`` computes, or of the rows described, goes through Ibis's
    argument validation, 10-30 us a node. (A probe: it counts Ibis's signature validations.)"""
    from ibis.common.annotations import Signature

    first, last = trail.time_range()
    trail.filter(start=first, end=last, event_type="trade.*", source="AuditObserver")  # catalogue, macros: once
    with_description(trail.filter(start=first, end=last)).select("time", "description", *CHRONOLOGICAL)  # schema
    validated = []
    original = Signature.validate

    def counting(self, func, args, kwargs):
        validated.append(func)
        return original(self, func, args, kwargs)

    monkeypatch.setattr(Signature, "validate", counting)
    rows = trail.filter(start=first + 1, end=last - 1, event_type="trade.*", source="AuditObserver")
    described = with_description(rows)
    assert validated == []
    # Selecting and ordering by column names (``_nodes.Rows``) validate nothing either.
    described.select("time", "description", *CHRONOLOGICAL).order_by(*CHRONOLOGICAL)
    rows.order_by(*CHRONOLOGICAL)
    assert validated == []
    # Ibis's own nodes built on a trail filter reuse its fields: ordering it by a value validates the sort
    # keys' fields only, not the 56 fields of the filter (``_nodes.Filter``).
    rows.order_by(*[rows[name] for name in CHRONOLOGICAL])
    monkeypatch.setattr(Signature, "validate", original)
    assert [kind for kind in validated if kind is ibis.expr.operations.Field] == [ibis.expr.operations.Field] * len(
        CHRONOLOGICAL)
    assert described.columns == (*trail.events.columns, "description")


def test_with_description_is_the_node_mutate_makes(trail):
    """On DuckDB ``with_description`` builds its projection directly; it must be ``mutate``'s node."""
    for table in (trail.events, trail.filter(event_type="trade.*").select("event_type", "source", "order_id")):
        _same_nodes(with_description(table).op(), table.mutate(description=describe_call(table)).op())


def test_selecting_and_ordering_by_names_make_the_nodes_ibis_makes(trail):
    """``_nodes.Rows`` builds ``select``/``order_by`` of column names directly: each node must be Ibis's, over
    the trail's view, a filter, described rows and a projection of those; anything else is Ibis's own method
    (its errors included)."""
    from ibis.common.exceptions import IbisError

    from workbench import _nodes

    first, last = trail.time_range()
    rows = trail.filter(start=first, end=last, event_type="trade.*")
    described = with_description(rows)
    narrow = described.select("time", "description", *CHRONOLOGICAL)
    for table in (trail.events, rows, described, narrow, rows.order_by("ts_event")):
        assert isinstance(table, _nodes.Rows)
        plain = ibis.Table(table.op())  # Ibis's methods on the same node
        for names in (("ts_event",), ("sequence", "time", "stream"), CHRONOLOGICAL[::-1]):
            _same_nodes(table.select(*names).op(), plain.select(*names).op())
            _same_nodes(table.order_by(*names).op(), plain.order_by(*names).op())
            _same_nodes(table.select(*names).order_by(*names).op(), plain.select(*names).order_by(*names).op())
        # Values, keyword names and descending keys are Ibis's: the same nodes, built by its methods.
        _same_nodes(table.select("ts_event", seq=table.sequence).op(),
                    plain.select("ts_event", seq=plain.sequence).op())
        _same_nodes(table.order_by(ibis.desc("ts_event"), "stream").op(), plain.order_by(ibis.desc("ts_event"),
                                                                                         "stream").op())
        for bad in (("no_such_column",), ("ts_event", "ts_event"), ()):
            with pytest.raises(IbisError) as ours:
                table.select(*bad)
            with pytest.raises(IbisError) as ibis_own:
                plain.select(*bad)
            assert type(ours.value) is type(ibis_own.value) and str(ours.value) == str(ibis_own.value)
        with pytest.raises(IbisError):
            table.order_by("no_such_column")
    expected = ibis.Table(described.op()).select(*CHRONOLOGICAL, "description").order_by(*CHRONOLOGICAL[::-1])
    ours = described.select(*CHRONOLOGICAL, "description").order_by(*CHRONOLOGICAL[::-1])
    assert ours.to_pyarrow().equals(expected.to_pyarrow())


def test_the_backends_of_rows_are_those_ibis_finds(trail):
    """``_nodes.Rows`` finds its backend by its parents alone where they were made from their parent (``derived``):
    the same backends Ibis's walk of the whole tree finds, over the trail's view and over a join of it."""
    first, last = trail.time_range()
    rows = trail.filter(start=first, end=last)
    for table in (trail.events, rows, with_description(rows).select("time", "description").order_by("time")):
        assert table._find_backends() == ibis.Table(table.op())._find_backends() == ([trail.backend], False)
    # Described rows of a join with an unbound table: the trail's backend and the unbound one, as Ibis finds them.
    other = ibis.table({"event_type": "string", "note": "string"}, name="other_rows")
    joined = with_description(trail.events.join(other, "event_type"))
    for table in (joined, joined.select("note", "description").order_by("note")):
        assert table._find_backends() == ibis.Table(table.op())._find_backends() == ([trail.backend], True)
    unbound = with_description(ibis.table({"event_type": "string", "source": "string"}, name="u"))
    assert unbound._find_backends() == ibis.Table(unbound.op())._find_backends()


def describe_call(table):
    """The describe macro's call over ``table``, built by Ibis's API (its arguments validated)."""
    from workbench.describe import DESCRIBE_COLUMNS, _duckdb_describe

    columns = tuple((name, table.schema()[name]) for name in DESCRIBE_COLUMNS if name in table.columns)
    call = _duckdb_describe(columns)[2]
    return call(*[table[name] for name, _ in columns]).to_expr()


def test_a_recipe_of_an_unknown_kind_is_refused_not_read_as_false():
    from workbench import filters

    table = ibis.table({"ts_event": "int64"}, name="t")
    assert str(filters.build(table, ("true",)).op().value) == "True"
    with pytest.raises(ValueError, match="not a predicate recipe: \\('tru',\\)"):
        filters.build(table, ("tru",))


def test_a_lit_has_the_type_ibis_parses_from_its_name():
    """``Lit`` types are Ibis type objects, not names parsed on first use (``filters._IBIS_TYPES``)."""
    from workbench import filters

    for name in ("int64", "int32", "string"):
        assert filters.Lit(1, name).ibis_type == ibis.dtype(name)
        assert filters.Lit(1, name).literal().type() == ibis.dtype(name)
    assert filters.Lit(1.5, "float64").ibis_type == ibis.dtype("float64")  # a name not listed is parsed


def test_a_repeated_query_shape_gives_the_rows_of_its_own_columns_values_and_window(generated_trail):
    """A stale-cache attack on the SQL kept per shape: the same user query (a trail filter, its description,
    a column selection, chronological order) asked again with another column list, the same columns in
    another order, another filter value or another window must answer with that call's rows and columns,
    as Ibis compiling each expression anew answers (``reuse_compiled_sql = False``)."""
    trail = open_trail(generated_trail.base_path, on_unknown="ignore")
    day = (trail.catalogue.first_ts // (24 * NS_PER_HOUR) + 1) * 24 * NS_PER_HOUR
    narrow = ["time", "ts_event", "event_type", "source", "description", "stream", "sequence", "correlation_id"]

    def ask(hours=(3, 9), columns=narrow, order=CHRONOLOGICAL, **given):
        rows = trail.filter(start=day + hours[0] * NS_PER_HOUR, end=day + hours[1] * NS_PER_HOUR, **given)
        return with_description(rows).select(*columns).order_by(*order)

    calls = [
        ask(),
        ask(hours=(10, 11)),  # another window, the same day
        ask(hours=(-20, 5)),  # another window over two days: other partitions
        ask(columns=narrow[::-1]),  # the same columns in another order
        ask(columns=["description", "ts_event", "stream", "sequence"]),
        ask(columns=["ts_event", "sequence", "stream"]),
        ask(event_type="trade.*"),
        ask(event_type="param.*"),
        ask(event_type="trade.*", source="AuditObserver"),
        ask(event_type="trade.*", source="x' OR '1'='1"),
        ask(order=("sequence", "stream", "ts_event")),  # another order of the same columns
        ask(columns=["ts_event", "sequence", "stream"], order=("stream", "sequence", "ts_event")),
    ]
    answers = []
    for expr in calls:
        fast = expr.to_pyarrow()
        trail.backend.reuse_compiled_sql = False
        try:
            portable = expr.to_pyarrow()
        finally:
            trail.backend.reuse_compiled_sql = True
        assert fast.equals(portable), str(expr)
        answers.append(fast)
    assert answers[0].num_rows > 0 and answers[9].num_rows == 0
    assert answers[10].to_pylist() != answers[0].to_pylist()
    assert sorted(map(repr, answers[10].to_pylist())) == sorted(map(repr, answers[0].to_pylist()))
    assert len({(a.schema.names.__repr__(), a.num_rows, a.to_pylist().__repr__()) for a in answers}) == len(answers)
    assert answers[3].column_names == narrow[::-1] and answers[3].to_pylist() == [
        dict(reversed(row.items())) for row in answers[0].to_pylist()]


def test_a_shapes_sql_is_merged_into_one_query_only_where_the_answer_is_the_same(generated_trail):
    """``ExactDuckDBBackend.template_sql`` merges nested subqueries of a one-table query (``flat_query_sql``):
    each query here answers what Ibis's own SQL answers (``reuse_compiled_sql = False``), including columns
    replaced under their own name before a filter, sort or aggregate reads them; joins, windows and limits
    keep Ibis's SQL."""
    from workbench._backend import flat_query_sql

    trail = open_trail(generated_trail.base_path, on_unknown="ignore")
    first, last = trail.time_range()
    rows = trail.filter(start=first, end=last)
    described = with_description(rows)
    other = trail.events.select("event_type", "source").distinct()
    queries = {
        "narrow": described.select("time", "description", *CHRONOLOGICAL).order_by(*CHRONOLOGICAL),
        "replaced": rows.select("event_type", "stream", sequence=-rows.sequence, ts_event=rows.ts_event % 7)
        .order_by("ts_event", "sequence", "stream"),
        "replaced_filtered": rows.select("event_type", "stream", "sequence", ts_event=-rows.ts_event)
        .filter(lambda t: t.ts_event > -last).order_by("ts_event", "stream", "sequence"),
        "counted": described.select("event_type", sequence=described.sequence * 2)
        .group_by("event_type").aggregate(n=lambda t: t.count(), total=lambda t: t.sequence.sum())
        .order_by(ibis.desc("n"), "event_type"),
        "described_count": described.group_by("description").aggregate(n=lambda t: t.count())
        .order_by(ibis.desc("n"), "description"),
        "joined": rows.join(other, "event_type").select("event_type", "source_right", *CHRONOLOGICAL)
        .order_by(*CHRONOLOGICAL, "source_right"),
        "window": rows.select("ts_event", "stream", "sequence", rank=ibis.row_number().over(
            group_by="event_type", order_by=list(CHRONOLOGICAL))).order_by(*CHRONOLOGICAL),
        "limited": rows.select("ts_event", "stream", "sequence").order_by(*CHRONOLOGICAL).limit(5)
        .select("sequence", "ts_event"),
    }
    merged: list[str] = []
    for name, expr in queries.items():
        ibis_sql = str(trail.backend.compile(expr))
        flat = flat_query_sql(trail.backend, expr, ibis_sql)
        if name in ("joined", "window", "limited"):
            assert flat is None, name
        elif flat is None:  # already one query as Ibis writes it
            assert ibis_sql.count("SELECT") == 1, name
        else:
            assert flat.count("SELECT") < ibis_sql.count("SELECT"), name
            merged.append(name)
        fast = expr.to_pyarrow()
        # What runs is that SQL (its values put back by ``CompiledShapes``, written as it writes them).
        served = trail.backend._prepared_sql(expr, None)
        assert served.count("SELECT") == (flat or str(trail.backend.compile(expr))).count("SELECT"), name
        trail.backend.reuse_compiled_sql = False
        try:
            portable = expr.to_pyarrow()
        finally:
            trail.backend.reuse_compiled_sql = True
        assert fast.num_rows > 0 and fast.equals(portable), name
    assert {"narrow", "counted", "described_count"} <= set(merged), merged


def test_a_dropped_trail_frees_its_view_and_connection(generated_trail):
    """The fields a trail's view and filters keep (``_nodes``) live on the nodes, in no cache beside them:
    a trail no longer referenced goes, with its view, the nodes built on it and its DuckDB connection."""
    import gc
    import weakref

    trail = open_trail(generated_trail.base_path)
    first, last = trail.time_range()
    rows = with_description(trail.filter(start=first, end=last, event_type="trade.*")).order_by(*CHRONOLOGICAL)
    assert rows.to_pyarrow().num_rows > 0
    view, backend = weakref.ref(trail.events.op()), weakref.ref(trail.backend)
    del trail, rows
    gc.collect()
    assert view() is None and backend() is None
