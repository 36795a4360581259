"""The ``ledgerline`` command: exit codes and output, checked against the library."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter, verify
from audit_core.cli import build_parser, main

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.fixture
def trail(tmp_path):
    with AuditEventEmitter(AuditConfig(base_path=tmp_path)) as em:
        for i in range(30):
            em.emit_param_change("meta_controller", "risk_multiplier", i, i + 1, "drawdown")
        em.emit_trade("trade.fill", "obs", "EURUSD.SIM", order_id="O-1", side="BUY", size="1", price="1.1")
    return tmp_path


def _tamper_line(trail: Path, index: int) -> None:
    path = next((trail / "hot").glob("*.jsonl"))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[index] = lines[index].replace(b'"new_value":', b'"new_value":9', 1)
    path.chmod(0o644)
    path.write_bytes(b"".join(lines))


class TestVerifyCommand:
    def test_clean_trail_exits_zero(self, trail, capsys):
        assert main(["verify", str(trail)]) == 0
        heading, result = capsys.readouterr().out.splitlines()[:2]
        assert heading == f"hot JSONL: record checksums, sequences, hash chains, seals ({trail})"
        assert result.startswith("  OK: 1 file(s), 31 record(s)")

    def test_tampered_trail_exits_one_and_names_the_sequence(self, trail, capsys):
        _tamper_line(trail, 7)
        assert main(["verify", str(trail)]) == 1
        out = capsys.readouterr().out
        assert out.splitlines()[1].startswith("  FAILED")
        assert re.search(r":8: sequence 7: checksum_mismatch", out)
        assert not verify(trail).ok

    def test_json_output_matches_the_library_report(self, trail, capsys):
        _tamper_line(trail, 3)
        main(["verify", "--json", str(trail)])
        printed = json.loads(capsys.readouterr().out)
        assert printed == json.loads(json.dumps(verify(trail).to_dict()))
        assert printed["failures"][0]["sequence"] == 3

    def test_hmac_key_from_environment(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("LL_KEY", "k")
        with AuditEventEmitter(AuditConfig(base_path=tmp_path, hmac_key_env="LL_KEY")) as em:
            em.emit_param_change("c", "k", 0, 1)
        assert main(["verify", str(tmp_path), "--hmac-key-env", "LL_KEY"]) == 0
        assert main(["verify", str(tmp_path)]) == 1

    def test_a_missing_path_fails_verification_and_says_why(self, tmp_path, capsys):
        # Issue 13: a trail deleted whole (or a mistyped path) must never read as verified; exit 1, not a usage error.
        assert main(["verify", str(tmp_path / "nope")]) == 1
        out, err = capsys.readouterr()
        assert err == "" and out.splitlines()[1].startswith("  FAILED: 0 file(s)")
        assert "nothing_verified: no such file or directory" in out


class TestTailCommand:
    def test_prints_the_newest_events_oldest_first(self, trail, capsys):
        assert main(["tail", str(trail), "-n", "3"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 3
        assert "#28 param.state_change" in lines[0] and "#30 trade.fill" in lines[2]

    def test_json_prints_raw_records(self, trail, capsys):
        main(["tail", str(trail), "-n", "1", "--json"])
        assert json.loads(capsys.readouterr().out)["sequence"] == 30


class TestTailFilters:
    @pytest.fixture
    def two_streams(self, tmp_path):
        for stream, source in (("ctrl", "meta_controller"), ("obs", "observer")):
            clock = iter(range(10**18, 10**18 + 10**12, 10**9))
            config = AuditConfig(base_path=tmp_path, stream_id=stream)
            with AuditEventEmitter(config, clock=lambda c=clock: next(c)) as em:
                for i in range(5):
                    if stream == "ctrl":
                        em.emit_param_change(source, "risk_multiplier", i, i + 1, "drawdown")
                    else:
                        em.emit_trade("trade.fill", source, "EURUSD.SIM", order_id=f"O-{i}", side="BUY", size="1",
                                      price="1.1")
        return tmp_path

    def test_each_line_names_its_stream(self, two_streams, capsys):
        assert main(["tail", str(two_streams), "-n", "4"]) == 0
        streams = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
        assert {s.split(".")[-1] for s in streams} == {"ctrl", "obs"}

    def test_type_stream_and_since_filter_before_counting(self, two_streams, capsys):
        # The newest matching events, not the matching ones among the newest: -n counts after the filter.
        assert main(["tail", str(two_streams), "-n", "3", "--type", "param.*"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 3 and all(line.split()[4].startswith("param.") for line in lines)
        assert main(["tail", str(two_streams), "-n", "50", "--stream", "obs", "--type", "trade.fill"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 5 and all(line.split()[0].endswith(".obs") for line in lines)
        assert main(["tail", str(two_streams), "-n", "50"]) == 0
        stamps = [line.split()[2] for line in capsys.readouterr().out.splitlines()]  # HH:MM:SS.nnnnnnnnnZ
        since = sorted(stamps)[len(stamps) // 2][:8]
        assert main(["tail", str(two_streams), "-n", "50", "--since", f"2001-09-09T{since}"]) == 0
        shown = [line.split()[2] for line in capsys.readouterr().out.splitlines()]
        assert sorted(shown) == sorted(stamp for stamp in stamps if stamp[:8] >= since) and len(shown) < len(stamps)

    def test_follow_prints_appended_events(self, trail):
        process = subprocess.Popen([sys.executable, "-m", "audit_core.cli", "tail", str(trail), "-n", "1", "--follow",
                                    "--interval", "0.1"], stdout=subprocess.PIPE, text=True)
        try:
            assert "#30 trade.fill" in process.stdout.readline()
            with AuditEventEmitter(AuditConfig(base_path=trail)) as em:
                em.emit_param_change("meta_controller", "risk_multiplier", 1, 2, "appended later")
            assert "appended later" in process.stdout.readline()
        finally:
            process.kill()
            process.communicate()


class TestPolish:
    def test_version(self, capsys):
        with pytest.raises(SystemExit) as exit_:
            main(["--version"])
        assert exit_.value.code == 0 and re.fullmatch(r"ledgerline \S+\n", capsys.readouterr().out)

    def test_verify_progress_goes_to_stderr_on_request_only(self, trail, capsys):
        assert main(["verify", str(trail)]) == 0
        assert capsys.readouterr().err == ""  # not a terminal, not asked: silent
        assert main(["verify", str(trail), "--progress"]) == 0
        out, err = capsys.readouterr()
        assert err.splitlines()[0] == f"ledgerline verify: verifying hot JSONL ({trail})..."
        assert re.fullmatch(r"ledgerline verify: done \(\d+\.\d s\)", err.splitlines()[-1])
        assert "verifying" not in out

    def test_a_closed_pipe_exits_quietly(self, trail):
        # `ledgerline tail | head -1`: no traceback, no "Exception ignored" message, the shell's SIGPIPE status.
        process = subprocess.Popen([sys.executable, "-m", "audit_core.cli", "tail", str(trail), "-n", "31"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.close()  # the reader went away before reading anything
        _, err = process.communicate(timeout=60)
        assert err == b"" and process.returncode == 141


class TestCommandDocs:
    def test_every_command_has_help_and_is_in_the_readme(self):
        readme = README.read_text()
        subparsers = next(a for a in build_parser()._actions if a.dest == "verb")
        for name, parser in subparsers.choices.items():
            assert parser.description, f"`ledgerline {name}` has no help text"
            assert f"ledgerline {name}" in readme, f"`ledgerline {name}` is not documented in README.md"

    def test_installed_entry_point_runs(self, trail):
        exe = Path(sys.executable).with_name("ledgerline")
        result = subprocess.run([str(exe), "verify", str(trail)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
