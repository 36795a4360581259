"""Evidence bundles of the demo trail (a real NautilusTrader backtest, signed): a day of parameter changes and
the incident, verified offline where only the bundle and the public key are."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from audit_core.evidence import export_bundle, verify_bundle
from audit_core.trust.signing import generate_keypair, load_public_key
from examples.adaptive_backtest import DAY_NS, INCIDENT_NS, INCIDENT_SOURCE, START_NS, run_backtest

DAY3 = START_NS + 2 * DAY_NS


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate_keypair(root / "writer.key", root / "writer.pub")
    run_backtest(root / "trail", signing_key_path=root / "writer.key")
    return root


def hot_records(demo):
    return [json.loads(line) for path in sorted((demo / "trail" / "hot").glob("*.jsonl"))
            for line in path.read_bytes().splitlines()]


def test_a_day_of_parameter_changes_verifies_complete_offline(demo, tmp_path):
    bundle = export_bundle(demo / "trail", tmp_path / "day3.bundle", start_ns=DAY3, end_ns=DAY3 + DAY_NS,
                           event_types=["param.*"])
    fresh = tmp_path / "auditor"
    fresh.mkdir()
    shutil.copy(bundle, fresh / "day3.bundle")
    shutil.copy(demo / "writer.pub", fresh / "writer.pub")
    done = subprocess.run([sys.executable, "-m", "audit_core.cli", "verify-bundle", "day3.bundle", "--public-key",
                           "writer.pub", "--json"], cwd=fresh, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    expected = sum(1 for r in hot_records(demo)
                   if r["event_type"].startswith("param.") and DAY3 <= r["ts_recorded"] < DAY3 + DAY_NS)
    assert expected > 0
    assert report["claim"] == "complete"
    assert sum(stream["matching"] for stream in report["streams"]) == expected


def test_the_incident_in_a_redacted_bundle(demo, tmp_path):
    bundle = export_bundle(demo / "trail", tmp_path / "incident.bundle", start_ns=INCIDENT_NS - 3_600 * 10**9,
                           end_ns=INCIDENT_NS + 3_600 * 10**9, params=["risk_multiplier"], redact=True)
    report = verify_bundle(bundle, public_key=load_public_key(demo / "writer.pub"))
    assert report.claim == "complete-redacted"
    matching = [json.loads(line) for stream in report.streams for line in stream.matching_records]
    assert any(r["source"] == INCIDENT_SOURCE and r["new_value"] == 4.0 for r in matching)
    assert sum(stream.redacted for stream in report.streams) > 0


def test_an_edited_demo_record_fails(demo, tmp_path):
    import zipfile

    bundle = export_bundle(demo / "trail", tmp_path / "b.bundle", start_ns=DAY3, end_ns=DAY3 + DAY_NS,
                           event_types=["param.*"])
    with zipfile.ZipFile(bundle) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(name for name in entries if name.endswith(".lines") and b'"param_name"' in entries[name])
    entries[name] = entries[name].replace(b'"new_value":', b'"new_value":1', 1)
    with zipfile.ZipFile(tmp_path / "edited.bundle", "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    report = verify_bundle(tmp_path / "edited.bundle", public_key=load_public_key(demo / "writer.pub"))
    assert report.claim == "invalid"
    assert {f.reason for f in report.failures} >= {"range_proof_invalid", "checksum_mismatch"}
