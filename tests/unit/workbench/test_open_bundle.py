"""An evidence bundle opens in the workbench as a read-only trail, verified first, with a hot trail's columns."""

from __future__ import annotations

import json
import zipfile

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.evidence import export_bundle
from audit_core.trust.signing import generate_keypair, load_public_key
from workbench import TrailNotVerifiedWarning, open_trail
from workbench.errors import WorkbenchInputError

NS = 1_000_000_000
T0 = 1_767_657_600 * NS


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    generate_keypair(root / "w.key", root / "w.pub")
    now = [T0]
    with AuditEventEmitter(AuditConfig(base_path=root / "trail", trader_id="T1", signing_key_path=root / "w.key"),
                           clock=lambda: now[0]) as emitter:
        for minute in range(30):
            now[0] = T0 + minute * 60 * NS
            if minute % 5 == 0:
                emitter.emit_param_change("meta_controller", "risk_multiplier", minute, minute + 1, "rebalance",
                                          event_type="param.risk_change")
            else:
                emitter.emit_system("sys.heartbeat", "node", payload={"minute": minute})
    bundle = export_bundle(root / "trail", root / "case.bundle", start_ns=T0 + 10 * 60 * NS,
                           end_ns=T0 + 20 * 60 * NS, event_types=["param.*"])
    return root, bundle


def test_a_bundle_opens_verified_with_the_columns_of_the_hot_trail(signed):
    root, bundle = signed
    trail = open_trail(bundle, public_key=load_public_key(root / "w.pub"))
    assert trail.verification.state == "verified" and trail.bundle_report.claim == "complete"
    hot = open_trail(root / "trail", public_key=load_public_key(root / "w.pub"))
    assert trail.events.schema() == hot.events.schema()
    rows = trail.events.order_by("sequence").to_pyarrow()
    # minutes 9..20: the window's ten records and its two edges, as the hot trail has them
    expected = hot.events.filter(hot.events.sequence.between(9, 20)).order_by("sequence").to_pyarrow()
    assert rows.equals(expected)
    changes = trail.filter(event_type="param.risk_change").to_pyarrow()
    assert changes.column("sequence").to_pylist() == [10, 15, 20]  # 20 is the right edge, outside the window


def test_without_a_trusted_key_the_trail_is_unverified_and_says_so(signed):
    _, bundle = signed
    trail = open_trail(bundle)
    assert trail.verification.state == "unverified" and trail.bundle_report.claim == "unauthenticated"
    with pytest.warns(TrailNotVerifiedWarning, match="claim unauthenticated"):
        trail.events  # noqa: B018


def test_a_tampered_bundle_opens_failed_for_investigation(signed, tmp_path):
    root, bundle = signed
    with zipfile.ZipFile(bundle) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    entries["streams/T1.main.lines"] = entries["streams/T1.main.lines"].replace(b'"minute":12', b'"minute":13')
    with zipfile.ZipFile(tmp_path / "t.bundle", "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    trail = open_trail(tmp_path / "t.bundle", public_key=load_public_key(root / "w.pub"))
    assert trail.verification.state == "failed"
    assert {f.reason for f in trail.bundle_report.failures} >= {"range_proof_invalid", "checksum_mismatch"}


def test_a_file_that_is_not_a_bundle_is_a_typed_error(tmp_path):
    (tmp_path / "x.bundle").write_text(json.dumps({"not": "a zip"}))
    with pytest.raises(WorkbenchInputError, match="not a readable evidence bundle"):
        open_trail(tmp_path / "x.bundle")
