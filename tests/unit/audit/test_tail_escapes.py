"""``ledgerline tail`` shows control characters and ANSI sequences escaped, never sends them to the terminal."""

from __future__ import annotations

import json

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cli import main
from audit_core.hot.reader import printable


class TestTailEscapes:
    @pytest.fixture
    def trail(self, tmp_path):
        with AuditEventEmitter(AuditConfig(base_path=tmp_path, trader_id="T-1")) as em:
            em.emit_system("sys.note", "evil\x1b[2J\x1b]0;pwned\x07", {"text": "\x9b31m\u202egnp.exe"})
        return tmp_path

    def test_text_output_shows_escapes_instead_of_obeying_them(self, trail, capsys):
        assert main(["tail", str(trail)]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
        assert "evil\\x1b[2J\\x1b]0;pwned\\x07" in out

    def test_json_output_stays_json_with_the_same_values(self, trail, capsys):
        assert main(["tail", str(trail), "--json"]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out
        record = json.loads(out)
        assert record["source"] == "evil\x1b[2J\x1b]0;pwned\x07"
        assert record["payload"] == {"text": "\x9b31m\u202egnp.exe"}

    def test_printable_leaves_ordinary_text_alone(self):
        assert printable("EURUSD.SIM size=1.5 naïve 😀") == "EURUSD.SIM size=1.5 naïve 😀"
        assert printable("a\nb\x7f") == "a\\x0ab\\x7f"
