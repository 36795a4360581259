"""Event models: canonical bytes, checksums, round trips, and every validation error."""

from __future__ import annotations

import enum
import json
import math
import time
from decimal import Decimal
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from audit_core import (
    AuditConfig,
    AuditEvent,
    AuditEventEmitter,
    AuditEventType,
    ParameterChangeEvent,
    SignalEvent,
    SystemEvent,
    TradeEvent,
    parse_record,
)
from audit_core.events import OrderSide, event_class_for
from audit_core.trust.record import COMMON_FIELDS, RECORD_FORMAT, compute_checksum, split_record


def _fill(**overrides):
    fields = dict(
        ts_event=1_767_657_600_000_000_001, event_type="trade.fill", source="observer", instrument_id="EURUSD.SIM",
        order_id="O-1", side="BUY", size="100000", price="1.10012", commission="2.20", currency="USD",
    )
    fields.update(overrides)
    return TradeEvent(**fields)


class TestCanonicalSerialization:
    def test_same_event_same_bytes(self):
        a = _fill()
        b = _fill()
        assert a.canonical_bytes() == b.canonical_bytes()
        assert a.checksum == b.checksum == compute_checksum(a.canonical_bytes())

    def test_layout_is_compact_ordered_utf8_with_checksum_last(self):
        event = ParameterChangeEvent(ts_event=5, source="mété", param_name="k", old_value=1, new_value=2.5)
        line = event.to_line()
        assert line.endswith(b'"}\n') and line.count(b"\n") == 1
        assert b" " not in line  # no insignificant whitespace
        assert "mété".encode() in line  # raw UTF-8, not \u escapes
        keys = list(json.loads(line))
        assert keys[:7] == ["ts_event", "event_type", "source", "trader_id", "sequence", "correlation_id", "prev_hash"]
        assert keys[-1] == "checksum"

    def test_decimals_travel_as_strings_exactly(self):
        line = _fill(price="12345678901234567890.100120000000000001").to_line()
        data = json.loads(line)
        assert data["price"] == "12345678901234567890.100120000000000001"
        assert data["size"] == "100000"

    def test_checksum_covers_every_field(self):
        base = _fill()
        for change in ({"price": "1.10013"}, {"source": "other"}, {"ts_event": base.ts_event + 1}, {"side": "SELL"}):
            assert _fill(**change).checksum != base.checksum

    def test_hmac_checksum_differs_from_plain(self):
        event = _fill()
        assert event.compute_checksum(b"key") != event.compute_checksum()
        assert len(event.compute_checksum(b"key")) == 64

    def test_default_ts_event_is_integer_nanoseconds_from_time_ns(self):
        before = time.time_ns()
        event = SystemEvent(event_type="sys.heartbeat", source="s")
        assert isinstance(event.ts_event, int)
        assert before <= event.ts_event <= time.time_ns()

    def test_split_record_reads_chain_fields_without_parsing_json(self):
        event = _fill(sequence=41, prev_hash="ab" * 32)
        fields = split_record(event.to_line())
        assert (fields.sequence, fields.prev_hash, fields.checksum) == (41, "ab" * 32, event.checksum)
        assert fields.body == event.canonical_bytes()


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


class TestRoundTrip:
    @given(
        old=json_values,
        new=json_values,
        reason=st.none() | st.text(max_size=40),
        source=st.text(min_size=1, max_size=30),
        owner=st.none() | st.text(min_size=1, max_size=30),
    )
    def test_parameter_event_round_trips_to_identical_bytes(self, old, new, reason, source, owner):
        event = ParameterChangeEvent(source=source, param_name="p", old_value=old, new_value=new, trigger_reason=reason,
                                     owner=owner)
        back = parse_record(event.to_line())
        assert type(back) is ParameterChangeEvent
        assert back.to_line() == event.to_line()
        assert back.owner == owner
        assert back.new_value == new or (isinstance(new, float) and math.isclose(back.new_value, new))

    @given(price=st.decimals(allow_nan=False, allow_infinity=False, places=12), size=st.integers(1, 10**12))
    def test_trade_round_trips_exact_decimals(self, price, size):
        event = _fill(price=price, size=str(size))
        back = parse_record(event.to_line())
        assert back.price == price and str(back.price) == str(price)
        assert back.checksum == event.checksum

    def test_each_type_parses_back_to_its_class(self):
        events = [
            ParameterChangeEvent(source="s", param_name="k", new_value=1),
            SignalEvent(source="s", strategy_source="m", signal_value=0.4, confidence=0.9),
            _fill(),
            SystemEvent(event_type="sys.regime_change", source="s", payload={"to": "DORSAL"}),
        ]
        for event in events:
            assert type(parse_record(event.to_line())) is type(event)


#: A parameter change exactly as the code before ``owner`` wrote it (its checksum included).
OLD_PARAM_LINE = (
    b'{"ts_event":1767657600000000000,"event_type":"param.risk_change","source":"meta_controller",'
    b'"trader_id":"TRADER-001","sequence":7,"correlation_id":null,"prev_hash":null,"param_name":"risk_multiplier",'
    b'"old_value":1.0,"new_value":0.5,"trigger_reason":"drawdown",'
    b'"checksum":"c7fd65f3ee4bd4b46419c3239bf327ffc50b00a8a78576d96198ff23c30af570"}\n'
)


class TestOwner:
    """``owner``: written only when given, last before the checksum; records without it are unchanged."""

    def test_a_record_without_owner_keeps_the_old_bytes_and_checksum(self):
        event = parse_record(OLD_PARAM_LINE)
        assert event.owner is None
        assert event.checksum == event.compute_checksum() == split_record(OLD_PARAM_LINE).checksum
        assert event.to_line() == OLD_PARAM_LINE  # re-serialized: the same bytes, no "owner":null added
        assert b"owner" not in ParameterChangeEvent(source="s", param_name="k", new_value=1).to_line()

    def test_owner_is_the_last_field_and_covered_by_the_checksum(self):
        event = ParameterChangeEvent(ts_event=5, source="ops_console", param_name="risk_multiplier", new_value=8.0,
                                     owner="meta_controller")
        line = event.to_line()
        assert list(json.loads(line))[-2:] == ["owner", "checksum"]
        assert b',"owner":"meta_controller","checksum":"' in line
        other = ParameterChangeEvent(ts_event=5, source="ops_console", param_name="risk_multiplier", new_value=8.0,
                                     owner="kelly_sizer")
        assert other.checksum != event.checksum
        assert parse_record(line).owner == "meta_controller"

    @pytest.mark.parametrize("owner", ["", "x" * 257])
    def test_a_bad_owner_is_named(self, owner):
        with pytest.raises(ValidationError, match="owner"):
            ParameterChangeEvent(source="s", param_name="k", new_value=1, owner=owner)

    def test_emitter_writes_owner_only_when_given(self, tmp_path):
        from audit_core import AuditConfig, AuditEventEmitter

        with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False), clock=lambda: 5) as audit:
            audit.emit_param_change("meta_controller", "risk_multiplier", None, 1.0, "initial value")
            audit.emit_param_change("ops_console", "risk_multiplier", 1.0, 8.0, None, owner="meta_controller")
        records = [json.loads(line) for path in sorted((tmp_path / "hot").glob("*.jsonl"))
                   for line in path.read_bytes().splitlines()]
        assert ["owner" in record for record in records] == [False, True]
        assert (records[1]["source"], records[1]["owner"]) == ("ops_console", "meta_controller")


class Regime(enum.Enum):
    VENTRAL = "VENTRAL"
    DORSAL = "DORSAL"


class TestParameterValues:
    def test_enum_and_decimal_values_are_stored_as_json(self):
        event = ParameterChangeEvent(
            source="s", param_name="regime", old_value=Regime.VENTRAL, new_value=Regime.DORSAL
        )
        assert json.loads(event.to_line())["new_value"] == "DORSAL"
        assert ParameterChangeEvent(source="s", param_name="k", new_value=Decimal("0.25")).new_value == "0.25"

    def test_numeric_values_keep_their_json_type(self):
        data = json.loads(ParameterChangeEvent(source="s", param_name="k", old_value=1, new_value=1.5).to_line())
        assert data["old_value"] == 1 and isinstance(data["old_value"], int)
        assert isinstance(data["new_value"], float)

    def test_tuple_becomes_list_and_nested_dicts_survive(self):
        event = ParameterChangeEvent(source="s", param_name="w", new_value={"a": (0.5, 0.5), "b": {"c": None}})
        assert json.loads(event.to_line())["new_value"] == {"a": [0.5, 0.5], "b": {"c": None}}


class TestValidationErrors:
    """Every rejected input raises ValidationError naming the field (and nothing is written: see emitter tests)."""

    @pytest.mark.parametrize(
        ("build", "field"),
        [
            (lambda: ParameterChangeEvent(source="s", param_name="k", new_value=float("nan")), "new_value"),
            (lambda: ParameterChangeEvent(source="s", param_name="k", new_value={"x": [1, float("inf")]}), "new_value"),
            (lambda: ParameterChangeEvent(source="s", param_name="k", new_value=object()), "new_value"),
            (lambda: ParameterChangeEvent(source="s", param_name="k", new_value=1, old_value={1: 2}), "old_value"),
            (lambda: SignalEvent(source="s", strategy_source="m", signal_value=float("inf"), confidence=0.5),
             "signal_value"),
            (lambda: SignalEvent(source="s", strategy_source="m", signal_value=0.1, confidence=1.01), "confidence"),
            (lambda: SignalEvent(source="s", strategy_source="m", signal_value=0.1, confidence=-0.1), "confidence"),
            (lambda: _fill(side="HOLD"), "side"),
            (lambda: _fill(side="buy"), "side"),
            (lambda: _fill(price="1.2.3"), "price"),
            (lambda: _fill(price="NaN"), "price"),
            (lambda: _fill(size="Infinity"), "size"),
            (lambda: _fill(price=1.1), "price"),
            (lambda: _fill(commission=Decimal("NaN")), "commission"),
            (lambda: _fill(venue="XNAS"), "venue"),
            (lambda: _fill(currency="us dollars"), "currency"),
            (lambda: _fill(event_type="param.k_change"), "event_type"),
            (lambda: _fill(ts_event=-1), "ts_event"),
            (lambda: _fill(source=""), "source"),
            (lambda: SystemEvent(event_type="sys", source="s"), "event_type"),
            (lambda: SystemEvent(event_type="sys.Bad Type", source="s"), "event_type"),
            (lambda: SystemEvent(event_type="sys.x", source="s", payload={"t": float("-inf")}), "payload"),
        ],
    )
    def test_field_is_named(self, build, field):
        with pytest.raises(ValidationError) as info:
            build()
        assert field in {str(part) for error in info.value.errors() for part in error["loc"]}, info.value
        assert field in str(info.value)

    def test_value_is_shown(self):
        with pytest.raises(ValidationError, match=r"1\.2\.3"):
            _fill(price="1.2.3")

    def test_float_money_message_names_the_fix(self):
        with pytest.raises(ValidationError, match="pass a str or Decimal"):
            _fill(price=1.1)

    def test_fill_requires_its_fields(self):
        with pytest.raises(ValidationError, match=r"trade\.fill needs order_id, side"):
            TradeEvent(event_type="trade.fill", source="s", instrument_id="X", size="1", price="1")

    def test_filtered_signal_needs_a_reason(self):
        with pytest.raises(ValidationError, match="filter_reason is required"):
            SignalEvent(source="s", strategy_source="m", signal_value=0.1, confidence=0.2, acted_on=False)

    def test_traded_signal_cannot_have_a_filter_reason(self):
        with pytest.raises(ValidationError, match="acted_on is True"):
            SignalEvent(source="s", strategy_source="m", signal_value=0.1, confidence=0.2, filter_reason="risk_limit")

    def test_events_are_frozen(self):
        event = _fill()
        with pytest.raises(ValidationError, match="frozen"):
            event.price = Decimal("2")


class RiskLimitEvent(AuditEvent):
    """A user's own root, added without editing the library."""

    event_type_root: ClassVar[str] = "risk"
    limit_name: str
    utilisation: float


class TestUserEventTypes:
    def test_custom_dotted_types_under_known_roots(self):
        event = ParameterChangeEvent(event_type="param.vol_target_change", source="s", param_name="v", new_value=1)
        assert event.event_type == "param.vol_target_change"
        assert SystemEvent(event_type="sys.heartbeat.fast", source="s").event_type == "sys.heartbeat.fast"

    def test_custom_root_parses_back_to_the_user_class(self):
        event = RiskLimitEvent(event_type="risk.limit_breach", source="risk", limit_name="gross", utilisation=1.2)
        assert event_class_for("risk.limit_breach") is RiskLimitEvent
        back = parse_record(event.to_line())
        assert isinstance(back, RiskLimitEvent) and back.utilisation == 1.2

    def test_known_types_are_strings(self):
        assert AuditEventType.TRADE_FILL == "trade.fill"
        event = ParameterChangeEvent(event_type=AuditEventType.PARAM_K_CHANGE, source="s", param_name="k", new_value=1)
        assert json.loads(event.to_line())["event_type"] == "param.k_change"


class TestRecordFormat:
    """``format``: stamped by the emitter right after ``prev_hash``; a record without it is format 1."""

    def test_the_emitter_stamps_the_current_format_after_prev_hash(self, tmp_path):
        with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False)) as audit:
            built = audit.emit(ParameterChangeEvent(source="s", param_name="k", new_value=1))
            fast = audit.emit_param_change("s", "k", 1, 2, "why")
        for event in (built, fast):
            assert event.format == RECORD_FORMAT == 3
            keys = list(json.loads(event.to_line()))
            assert keys[: len(COMMON_FIELDS) + 2] == [*COMMON_FIELDS, "format", "ts_recorded"]
        (hot_file,) = (tmp_path / "hot").glob("*.jsonl")
        assert [parse_record(line).format for line in hot_file.read_bytes().splitlines()] == [3, 3]

    def test_a_format_1_record_reads_as_format_1_and_keeps_its_bytes(self):
        event = parse_record(OLD_PARAM_LINE)
        assert event.format is None  # absent: format 1
        assert event.to_line() == OLD_PARAM_LINE

    def test_a_newer_format_is_refused_naming_the_field_and_value(self):
        newer = OLD_PARAM_LINE.replace(b'"prev_hash":null,', b'"prev_hash":null,"format":4,"ts_recorded":1,')
        with pytest.raises(ValidationError, match=r"format[\s\S]*less than or equal to 3[\s\S]*input_value=4"):
            parse_record(newer)


def _declared_trade_model() -> type[AuditEvent]:
    """``TradeEvent`` as pydantic builds it from plain declarations: each money field a before-validator
    running the same rule and then pydantic's decimal validator, ``side`` a plain enum field, the size
    rule a field validator. ``TradeEvent`` builds those fields' schemas by hand (one Python call per
    field); this is the reference it must agree with, byte for byte and error for error."""
    from typing import Annotated, Any

    from pydantic import BeforeValidator, Field, ValidationInfo, create_model, field_validator, model_validator

    from audit_core import events

    def before(value: Any, info: ValidationInfo) -> Any:
        return events._exact_decimal(value, lambda left: left, info)  # what it leaves, pydantic's validator gets

    money = Annotated[Decimal, BeforeValidator(before)]
    fields: dict[str, Any] = {}
    for name in TradeEvent.__annotations__:
        if name == "event_type_root":
            continue
        info = TradeEvent.model_fields[name]
        if "Decimal" in repr(info.annotation):
            fields[name] = (money | None, Field(default=None, exclude_if=info.exclude_if))
        elif name == "side":
            fields[name] = (events.OrderSide | None, None)
        else:
            fields[name] = (info.annotation, info)

    def positive_size(cls: Any, size: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if size is None or size > 0 or events._reading(info):
            return size
        if events._needs_positive_size(info.data.get("event_type", "")):
            raise ValueError(f"size must be > 0 on {info.data['event_type']}, got {size}")
        return size

    def required(self: Any) -> Any:
        missing = [name for name in events._TRADE_REQUIRED.get(self.event_type, ()) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.event_type} needs {', '.join(missing)}")
        return self

    validators = {"positive_size": field_validator("size")(classmethod(positive_size)),
                  "required": model_validator(mode="after")(required)}
    return create_model("TradeEvent", __base__=AuditEvent, __validators__=validators, **fields)


class _DecimalSubclass(Decimal):
    pass


_MONEY_INPUTS = st.one_of(
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(_DecimalSubclass),
    st.from_regex(r"\A-?[0-9]{1,24}(\.[0-9]{0,22})?([eE][-+]?[0-9]{1,2})?\Z"),
    st.integers(min_value=-(10**22), max_value=10**22),
    st.floats(allow_nan=True),
    st.sampled_from(["", " 1", "1_0", "abc", "NaN", "-Infinity", "0E-30", "-0", True, b"1", [1], {"a": 1}]),
)


class TestTradeSchemaMatchesItsDeclaration:
    reference = _declared_trade_model()

    @given(
        event_type=st.sampled_from(["trade.fill", "trade.order", "trade.order.accepted", "trade.position_closed",
                                    "trade.rejected"]),
        side=st.sampled_from(["BUY", "SELL", OrderSide.SELL, "buy", None, 1]),
        money=st.fixed_dictionaries({name: _MONEY_INPUTS for name in ("size", "price", "commission", "trigger_price",
                                                                      "realized_pnl")}),
        reading=st.booleans(),
        json_input=st.booleans(),
    )
    def test_same_bytes_and_same_errors_as_the_declared_model(self, event_type, side, money, reading, json_input):
        data = {"ts_event": 1_767_657_600_000_000_001, "event_type": event_type, "source": "observer",
                "instrument_id": "EURUSD.SIM", "order_id": "O-1", "side": side,
                **{name: value for name, value in money.items() if value is not None}}
        context = {"reading": True} if reading else None
        if json_input:
            try:
                text = json.dumps(data, default=str)
            except (TypeError, ValueError):
                return
            outcomes = [_outcome(lambda m=model: m.model_validate_json(text, context=context))
                        for model in (TradeEvent, self.reference)]
        else:
            outcomes = [_outcome(lambda m=model: m.model_validate(data, context=context))
                        for model in (TradeEvent, self.reference)]
        assert outcomes[0] == outcomes[1]


def _outcome(validate):
    """A validation's record line and Python dump, or its errors as pydantic reports them."""
    try:
        event = validate()
    except ValidationError as exc:
        return [(e["type"], e["loc"], e["msg"], repr(e["input"]), repr(e.get("ctx"))) for e in exc.errors()]
    dumped = event.model_dump()
    return event.to_line(), {name: (type(value), value) for name, value in dumped.items()}
