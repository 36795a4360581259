"""AuditEventEmitter: stamping, chaining, durability, failures that consume nothing."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from audit_core import (
    AuditConfig,
    AuditConfigError,
    AuditEventEmitter,
    AuditWriteError,
    FailureKind,
    ParameterChangeEvent,
    SignalEvent,
    SystemEvent,
    TradeEvent,
    parse_record,
    verify,
)
from audit_core.trust.record import GENESIS_HASH, compute_checksum


def _lines(emitter: AuditEventEmitter) -> list[bytes]:
    return emitter.writer.path.read_bytes().splitlines(keepends=True)


@pytest.fixture
def emitter(tmp_path):
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, trader_id="T-1")) as em:
        yield em


class TestStamping:
    def test_returns_the_event_as_written(self, emitter):
        event = emitter.emit_param_change("ctl", "risk_multiplier", 1.0, 0.5, "drawdown > 10%")
        assert _lines(emitter)[-1] == event.to_line()
        assert (event.trader_id, event.sequence, event.prev_hash) == ("T-1", 0, GENESIS_HASH)
        assert event.checksum == compute_checksum(event.canonical_bytes())

    def test_sequence_is_gapless_and_chained(self, emitter):
        events = [emitter.emit_param_change("ctl", "k", i, i + 1) for i in range(5)]
        assert [e.sequence for e in events] == [0, 1, 2, 3, 4]
        for before, after in itertools.pairwise(events):
            assert after.prev_hash == before.checksum
        assert emitter.next_sequence == 5 and emitter.last_hash == events[-1].checksum

    def test_every_helper_writes_its_type(self, emitter):
        emitter.emit_param_change("ctl", "k", 1, 2, event_type="param.k_change")
        emitter.emit_signal("pp", "momentum", 0.7, 0.9, regime="VENTRAL", correlation_id="SIG-1")
        emitter.emit_signal("pp", "momentum", 0.1, 0.2, acted_on=False, filter_reason="below_threshold")
        emitter.emit_trade("trade.order", "strat", "EURUSD.SIM", order_id="O-1", side="SELL", size=Decimal("10"),
                           correlation_id="SIG-1")
        emitter.emit_system("sys.resampling", "pp", {"ess": 12.5, "particles": 500})
        emitter.emit(SystemEvent(event_type="sys.evolution_trigger", source="bridge", payload={"why": "DRAWDOWN"}))
        types = [json.loads(line)["event_type"] for line in _lines(emitter)]
        assert types == ["param.k_change", "trade.signal", "trade.signal", "trade.order", "sys.resampling",
                         "sys.evolution_trigger"]
        assert verify(emitter.config.base_path).ok

    def test_event_built_by_hand_can_be_emitted_once(self, emitter):
        event = ParameterChangeEvent(source="ctl", param_name="k", new_value=3)
        emitter.emit(event)
        with pytest.raises(ValueError, match="already emitted as sequence 0"):
            emitter.emit(event)

    def test_round_trip_through_the_file(self, emitter):
        event = emitter.emit_trade("trade.fill", "obs", "EURUSD.SIM", order_id="O-9", side="BUY", size="1.5",
                                   price="1.123456789012345678", realized_pnl="-12.34", currency="USD")
        back = parse_record(_lines(emitter)[-1])
        assert back == event and back.checksum == event.checksum and back.price == Decimal("1.123456789012345678")


class TestNothingWrittenForInvalidEvents:
    @pytest.mark.parametrize(
        "emit",
        [
            lambda em: em.emit_param_change("ctl", "k", 1, float("nan")),
            lambda em: em.emit_signal("pp", "m", 0.5, 1.5),
            lambda em: em.emit_trade("trade.fill", "o", "X", order_id="O", side="LONG", size="1", price="1"),
            lambda em: em.emit_trade("trade.fill", "o", "X", order_id="O", side="BUY", size="1,5", price="1"),
            lambda em: em.emit_trade("trade.fill", "o", "X", order_id="O", side="BUY", size="1", price="1", qty=2),
            lambda em: em.emit_system("sys.big", "s", {"blob": "x" * 70_000}),
        ],
    )
    def test_validation_error_and_no_bytes(self, emitter, emit):
        emitter.emit_param_change("ctl", "k", 0, 1)
        size_before = emitter.writer.path.stat().st_size
        with pytest.raises(ValidationError):
            emit(emitter)
        assert emitter.writer.path.stat().st_size == size_before
        assert emitter.next_sequence == 1
        assert emitter.emit_param_change("ctl", "k", 1, 2).sequence == 1
        assert verify(emitter.config.base_path).ok

    @pytest.mark.parametrize("field, value", [("sequence", 7), ("prev_hash", "0" * 64), ("trader_id", "OTHER-001"),
                                              ("ts_recorded", 5), ("format", 1)])
    def test_a_chain_field_passed_by_the_caller_is_refused_not_overwritten(self, emitter, field, value):
        emitter.emit_param_change("ctl", "k", 0, 1)
        size_before = emitter.writer.path.stat().st_size
        with pytest.raises(ValueError, match=f"TradeEvent.{field}={value!r}: {field} is stamped by the emitter"):
            emitter.emit_trade("trade.fill", "o", "X", order_id="O", side="BUY", size="1", price="1",
                               **{field: value})
        assert emitter.writer.path.stat().st_size == size_before
        assert emitter.emit_param_change("ctl", "k", 1, 2).sequence == 1

    def test_oversized_record_names_the_largest_field_and_the_limit(self, emitter):
        with pytest.raises(ValidationError, match="over the limit of 65536") as info:
            emitter.emit_system("sys.big", "s", {"blob": "x" * 70_000})
        assert info.value.errors()[0]["loc"] == ("payload",)


class TestDurability:
    def test_trade_events_are_synced_before_emit_returns(self, emitter):
        syncs = emitter.writer.stats.syncs
        emitter.emit_trade("trade.order", "s", "X", order_id="O", side="BUY", size="1")
        assert emitter.writer.stats.syncs == syncs + 1

    def test_param_events_are_not_synced_until_flush(self, emitter):
        syncs = emitter.writer.stats.syncs
        emitter.emit_param_change("ctl", "k", 0, 1)
        assert emitter.writer.stats.syncs == syncs
        emitter.flush()
        assert emitter.writer.stats.syncs == syncs + 1

    def test_background_flusher_syncs_on_its_interval(self, tmp_path):
        import time

        with AuditEventEmitter(AuditConfig(base_path=tmp_path, flush_interval_s=0.02)) as em:
            em.emit_param_change("ctl", "k", 0, 1)
            deadline = time.monotonic() + 10
            while em.writer.stats.syncs == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert em.writer.stats.syncs >= 1


class TestFailures:
    def test_write_failure_raises_and_consumes_no_sequence(self, emitter):
        emitter.emit_param_change("ctl", "k", 0, 1)
        emitter.writer.close()
        event = ParameterChangeEvent(source="ctl", param_name="k", new_value=2)
        with pytest.raises(AuditWriteError, match="closed"):
            emitter.emit(event)
        assert emitter.next_sequence == 1
        assert event.sequence is None and event.prev_hash is None

    def test_failing_callback_is_logged_and_counted_not_raised(self, tmp_path, caplog):
        seen = []

        def broken(event):
            raise RuntimeError("dashboard down")

        with AuditEventEmitter(AuditConfig(base_path=tmp_path), on_event=[broken, seen.append]) as em:
            with caplog.at_level(logging.ERROR, logger="ledgerline.emitter"):
                event = em.emit_param_change("ctl", "k", 0, 1)
            assert em.callback_errors == 1
        assert seen == [event]
        assert "dashboard down" in caplog.text

    def test_missing_hmac_key_fails_at_construction(self, tmp_path, monkeypatch):
        monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
        with pytest.raises(AuditConfigError, match="NO_SUCH_KEY_VAR"):
            AuditEventEmitter(AuditConfig(base_path=tmp_path, hmac_key_env="NO_SUCH_KEY_VAR"))
        assert not (tmp_path / "hot").exists()  # the key is checked before any file is created


class TestHmac:
    def test_keyed_trail_verifies_only_with_its_key(self, tmp_path):
        with AuditEventEmitter(AuditConfig(base_path=tmp_path, hmac_key="k3y")) as em:
            event = em.emit_param_change("ctl", "k", 0, 1)
        assert event.checksum == compute_checksum(event.canonical_bytes(), b"k3y")
        assert verify(tmp_path, hmac_key=b"k3y").ok
        unkeyed = verify(tmp_path)
        assert not unkeyed.ok and "HMAC key" in unkeyed.to_text()
        assert not verify(tmp_path, hmac_key=b"wrong").ok


class TestRestart:
    def test_a_new_emitter_continues_the_stream(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        with AuditEventEmitter(config) as first:
            last = first.emit_param_change("ctl", "k", 0, 1)
        with AuditEventEmitter(config) as second:
            nxt = second.emit_param_change("ctl", "k", 1, 2)
        assert nxt.sequence == last.sequence + 1 and nxt.prev_hash == last.checksum
        assert verify(tmp_path).ok

    def test_a_new_emitter_after_a_clean_close_writes_a_new_sealed_segment(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        with AuditEventEmitter(config) as first:
            first.emit_param_change("ctl", "k", 0, 1)
            first_path = first.writer.path
        sealed = first_path.read_bytes()
        with AuditEventEmitter(config) as second:
            second.emit_param_change("ctl", "k", 1, 2)
            assert second.writer.path != first_path
            assert second.writer.path.name.endswith(".0001.jsonl")
        assert first_path.read_bytes() == sealed
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert (report.records, report.sealed_files, len(report.streams)) == (2, 2, 1)

    def test_torn_last_line_is_closed_off_and_recorded_not_rewritten(self, tmp_path, crash):
        config = AuditConfig(base_path=tmp_path)
        first = AuditEventEmitter(config)
        last = first.emit_param_change("ctl", "k", 0, 1)
        path = first.writer.path
        crash(first)  # the process dies mid-write: its file stays unsealed, the torn bytes end it
        torn = b'{"ts_event":17676576000000,"event_type":"trade.fi'
        with path.open("ab") as handle:
            handle.write(torn)
        before = path.read_bytes()
        broken = verify(tmp_path)
        assert [(f.kind, f.sequence) for f in broken.failures] == [(FailureKind.TORN_LINE, last.sequence + 1)]
        with AuditEventEmitter(config) as second:
            assert second.writer.path == path  # the unsealed file of today is continued
            nxt = second.emit_param_change("ctl", "k", 1, 2)
        after = path.read_bytes()
        assert after.startswith(before)  # nothing rewritten or truncated
        assert after[len(before) : len(before) + 1] == b"\n"  # the torn line was closed off
        recovery = parse_record(after.splitlines(keepends=True)[-2])
        assert recovery.event_type == "sys.recovery"
        assert recovery.payload["torn_file"] == path.name
        assert recovery.payload["torn_offset"] == len(before) - len(torn)
        assert recovery.payload["torn_length"] == len(torn)
        assert recovery.payload["torn_sha256"] == hashlib.sha256(torn).hexdigest()
        assert recovery.sequence == last.sequence + 1 and recovery.prev_hash == last.checksum
        assert nxt.sequence == last.sequence + 2 and nxt.prev_hash == recovery.checksum
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert len(report.recovered) == 1
        assert (report.recovered[0].file, report.recovered[0].kind) == (str(path), FailureKind.TORN_LINE)
        assert report.sealed_files == 1


class TestUnreadableLastRecord:
    def test_refuses_to_continue_and_releases_the_stream(self, tmp_path, crash):
        """A last line that ends with a newline but is not a record is tampering, not a crash:
        the emitter refuses to chain onto it, says so, and leaves the stream free."""
        from audit_core import AuditIntegrityError

        config = AuditConfig(base_path=tmp_path, stream_id="s")
        first = AuditEventEmitter(config)
        first.emit_param_change("ctl", "k", 0, 1)
        path = first.writer.path
        crash(first)
        with path.open("ab") as handle:
            handle.write(b'{"not":"a record"}\n')
        with pytest.raises(AuditIntegrityError, match="last record is unreadable"):
            AuditEventEmitter(config)
        with pytest.raises(AuditIntegrityError):  # the lock was released: same error, not "held by pid"
            AuditEventEmitter(config)


_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_decimals = st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-(10**9),
                                    max_value=10**9)
_same_bytes = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class TestHelpersWriteTheBytesOfTheWholeModel:
    """The helpers validate only the caller's fields and stamp the chain fields into the built event
    afterwards (issue 18). Each line must be, byte for byte, the line of the same record validated
    with every field at once (how the helpers built it before), floats and decimals included."""

    @staticmethod
    def _check(emitter, event, cls, fields):
        whole = cls.model_validate({
            **fields, "trader_id": emitter.config.trader_id, "sequence": event.sequence,
            "prev_hash": event.prev_hash, "format": event.format, "ts_recorded": event.ts_recorded,
        })
        assert _lines(emitter)[-1] == whole.to_line() == event.to_line()
        assert event.checksum == whole.compute_checksum()
        assert parse_record(whole.to_line()) == whole

    @_same_bytes
    @given(old=_json_values, new=_json_values, reason=st.none() | st.text(max_size=40),
           source=st.text(min_size=1, max_size=30), owner=st.none() | st.text(min_size=1, max_size=30),
           ts=st.integers(0, 2**63 - 1))
    def test_param_change(self, emitter, old, new, reason, source, owner, ts):
        event = emitter.emit_param_change(source, "p", old, new, reason, owner=owner, ts_event=ts)
        self._check(emitter, event, ParameterChangeEvent, {
            "ts_event": ts, "event_type": "param.state_change", "source": source, "correlation_id": None,
            "param_name": "p", "old_value": old, "new_value": new, "trigger_reason": reason, "owner": owner,
        })

    @_same_bytes
    @given(price=_decimals, size=st.decimals(min_value=1, max_value=10**12, places=4),
           commission=_decimals, pnl=_decimals)
    def test_trade(self, emitter, price, size, commission, pnl):
        fields = {"order_id": "O-1", "side": "SELL", "size": size, "price": price, "commission": commission,
                  "realized_pnl": pnl, "currency": "USD"}
        event = emitter.emit_trade("trade.fill" if price is not None else "trade.order", "s", "EURUSD.SIM",
                                   ts_event=5, **fields)
        self._check(emitter, event, TradeEvent, {
            "ts_event": 5, "event_type": event.event_type, "source": "s", "correlation_id": None,
            "instrument_id": "EURUSD.SIM", **fields,
        })

    @_same_bytes
    @given(value=st.floats(allow_nan=False, allow_infinity=False), confidence=st.floats(0.0, 1.0),
           payload=st.dictionaries(st.text(max_size=8), _json_values, max_size=4))
    def test_signal_and_system(self, emitter, value, confidence, payload):
        signal = emitter.emit_signal("s", "m", value, confidence, ts_event=7)
        self._check(emitter, signal, SignalEvent, {
            "ts_event": 7, "event_type": "trade.signal", "source": "s", "correlation_id": None,
            "strategy_source": "m", "signal_value": value, "confidence": confidence, "regime": None,
            "instrument_id": None, "acted_on": True, "filter_reason": None,
        })
        system = emitter.emit_system("sys.regime_change", "s", payload, ts_event=8)
        self._check(emitter, system, SystemEvent, {
            "ts_event": 8, "event_type": "sys.regime_change", "source": "s", "correlation_id": None,
            "payload": payload,
        })
