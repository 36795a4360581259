"""AuditConfig: every bad value fails at construction, naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audit_core import AuditConfig, AuditConfigError


class TestAuditConfigValidation:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("trader_id", "TRADER/001"),
            ("trader_id", ""),
            ("stream_id", "a.b"),
            ("flush_interval_s", 0),
            ("flush_interval_s", -1.0),
            ("retention_days", 0),
            ("max_record_bytes", 10),
            ("durable_event_types", ("Trade.*",)),
            ("sync_writes", "perhaps"),
        ],
    )
    def test_bad_value_names_the_field(self, tmp_path, field, value):
        with pytest.raises(ValidationError, match=field) as info:
            AuditConfig(base_path=tmp_path, **{field: value})
        assert info.value.errors()[0]["loc"][0] == field

    def test_unknown_option_is_rejected(self, tmp_path):
        with pytest.raises(ValidationError, match="rotate_hourly"):
            AuditConfig(base_path=tmp_path, rotate_hourly=True)

    def test_two_key_sources_are_rejected(self, tmp_path):
        with pytest.raises(ValidationError, match="hmac_key or hmac_key_env"):
            AuditConfig(base_path=tmp_path, hmac_key="k", hmac_key_env="LEDGERLINE_KEY")

    def test_defaults(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        assert config.retention_days == 90
        assert config.hot_path == tmp_path / "hot"
        assert config.resolve_hmac_key() is None


class TestDurability:
    def test_trade_events_are_durable_by_default(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        assert config.is_durable("trade.fill")
        assert config.is_durable("trade.signal")
        assert not config.is_durable("param.risk_change")
        assert not config.is_durable("sys.regime_change")

    def test_per_type_patterns(self, tmp_path):
        config = AuditConfig(base_path=tmp_path, durable_event_types=("trade.fill", "param.*"))
        assert config.is_durable("trade.fill")
        assert not config.is_durable("trade.order")
        assert config.is_durable("param.k_change")

    def test_sync_writes_false_turns_durability_off(self, tmp_path):
        assert not AuditConfig(base_path=tmp_path, sync_writes=False).is_durable("trade.fill")


class TestHmacKey:
    def test_key_from_environment(self, tmp_path, monkeypatch):
        monkeypatch.setenv("LEDGERLINE_TEST_KEY", "s3cret")
        config = AuditConfig(base_path=tmp_path, hmac_key_env="LEDGERLINE_TEST_KEY")
        assert config.resolve_hmac_key() == b"s3cret"

    def test_unset_variable_is_a_clear_error(self, tmp_path, monkeypatch):
        monkeypatch.delenv("LEDGERLINE_TEST_KEY", raising=False)
        config = AuditConfig(base_path=tmp_path, hmac_key_env="LEDGERLINE_TEST_KEY")
        with pytest.raises(AuditConfigError, match="LEDGERLINE_TEST_KEY"):
            config.resolve_hmac_key()

    def test_key_is_not_shown_in_repr(self, tmp_path):
        assert "s3cret" not in repr(AuditConfig(base_path=tmp_path, hmac_key="s3cret"))
