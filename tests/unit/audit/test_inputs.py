"""Inputs: every value that reaches a record is stored losslessly (hot and cold) or refused at emit.

Refused means a pydantic ``ValidationError`` naming the field and the value, nothing written and no
sequence consumed (issue 13, finding 8). Each class is one finding; each failed on main before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from audit_core import AuditConfig, AuditEventEmitter, SystemEvent, TradeEvent
from audit_core.cold.converter import ParquetConverter
from audit_core.events import (
    COLD_DECIMAL_FRACTION_DIGITS,
    COLD_DECIMAL_INTEGER_DIGITS,
    MAX_NESTING_DEPTH,
    ParameterChangeEvent,
)
from audit_core.integrations.audited import AuditedComponent, AuditedParameter
from workbench import open_trail


@pytest.fixture
def emitter(tmp_path):
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, trader_id="T-1")) as em:
        yield em


def refused(emitter: AuditEventEmitter, call, field: str, *fragments: str) -> ValidationError:
    """Run ``call``; it must raise a ValidationError about ``field``, write nothing, consume no sequence."""
    before = emitter.writer.path.read_bytes() if emitter.writer.path.exists() else b""
    with pytest.raises(ValidationError) as info:
        call()
    error = info.value.errors()[0]
    assert error["loc"][0] == field, info.value
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    after = emitter.writer.path.read_bytes() if emitter.writer.path.exists() else b""
    assert after == before
    assert emitter.emit_param_change("probe", "p", None, 1).sequence == before.count(b"\n")
    return info.value


def order(size: object, event_type: str = "trade.order", **fields: object) -> dict[str, object]:
    return {"event_type": event_type, "source": "s", "instrument_id": "EURUSD.SIM", "order_id": "O-1",
            "side": "BUY", "size": size, **fields}


class TestLoneSurrogates:
    def test_two_surrogate_keys_are_refused_not_collapsed(self, emitter):
        payload = dict([("a\ud800", 1), ("a\udc00", 2)])  # both became "a\ufffd..." and one value was lost
        assert len(payload) == 2
        refused(emitter, lambda: emitter.emit_system("sys.x", "s", payload), "payload", "lone surrogate")

    def test_surrogate_value_is_a_validation_error(self, emitter):
        refused(emitter, lambda: emitter.emit_system("sys.x", "s", {"a": ["\udfff"]}), "payload", "a[0]")
        refused(emitter, lambda: emitter.emit_param_change("s", "p", None, {"k": "\ud800"}), "new_value", "at k")

    def test_valid_non_ascii_is_kept_exactly(self, emitter):
        event = emitter.emit_system("sys.x", "s", {"é😀": "naïve \U0001f600"})
        assert json.loads(event.to_line())["payload"] == {"é😀": "naïve \U0001f600"}


class TestKeys:
    def test_non_string_and_colliding_keys_in_payload(self, emitter):
        refused(emitter, lambda: emitter.emit_system("sys.x", "s", {1: "a", "1": "b"}), "payload", "mapping key 1")
        refused(emitter, lambda: emitter.emit_system("sys.x", "s", {"x": {(1, 2): "a"}}), "payload", "(1, 2) at x")

    def test_a_key_twice_is_refused_never_merged(self, emitter):
        """A str subclass key becomes its plain string, which may be another key of the same dict (before
        or after it); a mapping other than a dict may yield a key twice. Either way: refused."""
        class Key(str):
            def __hash__(self) -> int:  # not equal to its plain string in a dict
                return 1

            def __eq__(self, other: object) -> bool:
                return self is other

        for payload in ({"a": 1, Key("a"): 2}, {Key("a"): 1, "a": 2}, {"b": {"x": 0, Key("a"): 1, "a": 2}}):
            assert len(payload) == 2 or len(payload["b"]) == 3
            refused(emitter, lambda p=payload: emitter.emit_system("sys.x", "s", p), "payload", "'a'", "occurs twice")

        class Pairs(Mapping):
            def __init__(self, pairs):
                self.pairs = pairs

            def __getitem__(self, key):
                return dict(self.pairs)[key]

            def __iter__(self):
                return (key for key, _ in self.pairs)

            def __len__(self):
                return len(self.pairs)

        refused(emitter, lambda: emitter.emit_system("sys.x", "s", Pairs([("a", 1), ("a", 2)])), "payload",
                "'a'", "occurs twice")
        event = emitter.emit_system("sys.x", "s", {"a": 1, Key("b"): 2, "c": {"a": 1}})
        assert json.loads(event.to_line())["payload"] == {"a": 1, "b": 2, "c": {"a": 1}}

    def test_non_string_keys_in_parameter_values(self, emitter):
        refused(emitter, lambda: emitter.emit_param_change("s", "w", None, {1: "a", "1": "b"}), "new_value", "key 1")

    def test_audited_parameter_refuses_instead_of_collapsing(self, emitter):
        class Controller(AuditedComponent):
            weights = AuditedParameter(event_type="param.weight_change")

        controller = Controller(emitter, "ctl")
        refused(emitter, lambda: setattr(controller, "weights", {1: "a", "1": "b"}), "new_value", "mapping key 1")
        with pytest.raises(AttributeError):
            controller.weights  # noqa: B018 - the refused value never took effect
        controller.weights = {"a": 0.5}  # string keys are recorded as before
        assert controller.weights == {"a": 0.5}


def nested(depth: int, container: str = "dict") -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value} if container == "dict" else [value]
    return value


class TestNesting:
    @pytest.mark.parametrize("container", ["dict", "list"])
    def test_at_the_limit_is_accepted_one_deeper_is_refused(self, emitter, container):
        emitter.emit_param_change("s", "p", None, nested(MAX_NESTING_DEPTH, container))
        emitter.emit_system("sys.x", "s", {"v": nested(MAX_NESTING_DEPTH - 1, container)})
        too_deep = nested(MAX_NESTING_DEPTH + 1, container)
        refused(emitter, lambda: emitter.emit_param_change("s", "p", None, too_deep), "new_value", "MAX_NESTING_DEPTH")
        refused(emitter, lambda: emitter.emit_system("sys.x", "s", {"v": too_deep}), "payload", "nested deeper")

    def test_far_too_deep_is_a_validation_error_not_a_recursion_error(self, emitter):
        refused(emitter, lambda: emitter.emit_system("sys.x", "s", nested(5000)), "payload", "64 levels")
        refused(emitter, lambda: emitter.emit_param_change("s", "p", None, nested(5000, "list")), "new_value")

    def test_payload_must_be_an_object(self, emitter):
        refused(emitter, lambda: emitter.emit_system("sys.x", "s", [1, 2]), "payload", "got list")  # type: ignore[arg-type]


class TestNonFinite:
    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), Decimal("NaN"), Decimal("-Infinity")])
    def test_refused_everywhere(self, emitter, bad):
        refused(emitter, lambda: emitter.emit_system("sys.x", "s", {"a": {"b": [bad]}}), "payload")
        refused(emitter, lambda: emitter.emit_param_change("s", "p", None, bad), "new_value")
        if isinstance(bad, float):
            refused(emitter, lambda: emitter.emit_signal("s", "m", bad, 0.5), "signal_value")
        else:
            refused(emitter, lambda: emitter.emit_trade(**order(bad)), "size")
            refused(emitter, lambda: emitter.emit_trade(**order("1", "trade.fill", price=bad)), "price")


LIMIT = Decimal("9" * COLD_DECIMAL_INTEGER_DIGITS + "." + "9" * COLD_DECIMAL_FRACTION_DIGITS)
SMALLEST = Decimal("1e-18")


class TestColdDecimals:
    @pytest.mark.parametrize(("field", "value", "why"), [
        ("size", "1e30", "more than 20 integer digits"),
        ("size", "1" + "0" * COLD_DECIMAL_INTEGER_DIGITS, "more than 20 integer digits"),
        ("size", 10**COLD_DECIMAL_INTEGER_DIGITS, "more than 20 integer digits"),
        ("price", "1e-30", "beyond 18 decimal places"),
        ("price", Decimal("1.0000000000000000001"), "beyond 18 decimal places"),
        ("commission", "-0.0000000000000000005", "beyond 18 decimal places"),
    ])
    def test_beyond_decimal_38_18_is_refused_with_the_limit(self, emitter, field, value, why):
        fields = order("1", "trade.fill", price="1") | {field: value}
        refused(emitter, lambda: emitter.emit_trade(**fields), field, why, "DECIMAL(38,18)")

    def test_zero_digits_beyond_the_limit_are_exact_and_accepted(self, emitter):
        event = emitter.emit_trade(**order("1.00000000000000000000000", "trade.fill", price="0E-40"))
        assert event.size == 1 and event.price == 0

    def test_at_the_limit_emits_converts_and_reads_back_exactly(self, tmp_path: Path):
        base = tmp_path / "trail"
        with AuditEventEmitter(AuditConfig(base_path=base, trader_id="T-1", sync_writes=False)) as em:
            em.emit_trade(**order(LIMIT, "trade.fill", price=LIMIT.copy_negate(), commission=SMALLEST,
                                  ts_init=2**63 - 1))
            with pytest.raises(ValidationError, match="more than 20 integer digits"):
                em.emit_trade(**order("1" + "0" * COLD_DECIMAL_INTEGER_DIGITS, "trade.fill", price="1"))
            with pytest.raises(ValidationError, match="beyond 18 decimal places"):
                em.emit_trade(**order("1", "trade.fill", price=SMALLEST / 10))
        converter = ParquetConverter(base / "hot", base / "cold")
        for path in sorted((base / "hot").glob("*.jsonl")):
            assert converter.convert_file(path).converted
        frame = open_trail(base).events.to_pandas()
        assert len(frame) == 1
        row = frame.iloc[0]
        assert row["size"] == LIMIT and row["price"] == LIMIT.copy_negate() and row["commission"] == SMALLEST
        assert row["ts_init"] == 2**63 - 1


class TestInt64:
    @pytest.mark.parametrize("field", ["duration_ns", "ts_init"])
    def test_beyond_int64_is_refused(self, emitter, field):
        fields = order("0", "trade.position_closed") | {field: 2**70}
        refused(emitter, lambda: emitter.emit_trade(**fields), field, "less than 9223372036854775808")

    def test_int64_max_is_accepted(self, emitter):
        event = emitter.emit_trade(**order("0", "trade.position_closed", duration_ns=2**63 - 1, ts_init=2**63 - 1))
        assert event.duration_ns == 2**63 - 1

    def test_sequence_is_bounded_too(self):
        with pytest.raises(ValidationError, match="sequence"):
            SystemEvent(event_type="sys.x", source="s", sequence=2**63)


class TestSizes:
    @pytest.mark.parametrize("event_type", ["trade.order", "trade.fill", "trade.order.accepted"])
    @pytest.mark.parametrize("size", ["0", "-1", Decimal("-0.5"), 0])
    def test_orders_and_fills_need_a_positive_size(self, emitter, event_type, size):
        refused(emitter, lambda: emitter.emit_trade(**order(size, event_type, price="1")), "size", "size must be > 0")

    def test_prices_may_be_negative_and_closed_positions_carry_zero(self, emitter):
        emitter.emit_trade(**order("1", "trade.fill", price="-37.63"))  # WTI, April 2020
        emitter.emit_trade(**order("0", "trade.position_closed", price="-37.63", realized_pnl="-5"))
        emitter.emit_trade(**order("0", "trade.canceled", reason="canceled"))
        assert TradeEvent(**order("5", "trade.rejected")).size == 5


def test_parameter_change_event_direct_construction_is_checked_too():
    with pytest.raises(ValidationError, match="lone surrogate"):
        ParameterChangeEvent(source="s", param_name="p", new_value=["\ud800"])


class TestRecordsAlreadyWritten:
    """The limits say what may be written now; a record written before they existed stays readable."""

    OLD_LINES = [
        # an order of size 0 and a fill whose slippage has 21 decimal places, as earlier versions wrote them
        {"ts_event": 1, "event_type": "trade.order", "source": "obs", "trader_id": "T", "sequence": 0,
         "correlation_id": None, "prev_hash": "0" * 64, "instrument_id": "EURUSD.SIM", "order_id": "O-1",
         "side": "BUY", "size": "0"},
        {"ts_event": 2, "event_type": "trade.fill", "source": "obs", "trader_id": "T", "sequence": 1,
         "correlation_id": None, "prev_hash": "0" * 64, "instrument_id": "EURUSD.SIM", "order_id": "O-1",
         "side": "BUY", "size": "1", "price": "1.1", "slippage_bps": "0.123456789012345678901"},
    ]

    def test_parse_record_and_tail_read_them(self, tmp_path):
        from audit_core import parse_record, tail
        from audit_core.trust.record import build_line, compute_checksum

        lines = []
        for fields in self.OLD_LINES:
            body = json.dumps(fields, separators=(",", ":")).encode()
            lines.append(build_line(body, compute_checksum(body)))
        order, fill = (parse_record(line) for line in lines)
        assert order.size == 0 and fill.slippage_bps == Decimal("0.123456789012345678901")  # exact, not refused
        hot = tmp_path / "hot"
        hot.mkdir()
        (hot / "audit.T.main.2026-01-01.0000.jsonl").write_bytes(b"".join(lines))
        assert [e.event_type for e in tail(hot, 5)] == ["trade.order", "trade.fill"]
        # ... while a new record with the same values is refused.
        with pytest.raises(ValidationError, match="size must be > 0"):
            TradeEvent(**{k: v for k, v in self.OLD_LINES[0].items() if k not in ("sequence", "prev_hash")})
        with pytest.raises(ValidationError, match="beyond 18 decimal places"):
            TradeEvent(**{k: v for k, v in self.OLD_LINES[1].items() if k not in ("sequence", "prev_hash")})

    def test_a_stored_float_amount_is_still_refused_when_read(self):
        from audit_core import parse_record

        fields = {**self.OLD_LINES[1], "price": 1.1}  # a JSON number, never written by the emitter: inexact
        with pytest.raises(ValidationError, match=r"float 1\.1 is inexact"):
            parse_record(json.dumps(fields, separators=(",", ":")) + "\n")
