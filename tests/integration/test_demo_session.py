"""`make demo`'s session runs end to end on real files and leaves a trail that verifies."""

from __future__ import annotations

from audit_core import tail, verify
from examples import demo_session


def test_demo_session_crosses_midnight_and_verifies(tmp_path, capsys):
    out = tmp_path / "demo_trail"
    assert demo_session.main(out) == 0
    report = verify(out / "hot")
    assert report.ok
    assert [p.rsplit(".", 3)[-3] for p in report.files] == ["2026-01-05", "2026-01-06"]
    assert report.sealed_files == 2
    assert report.records == demo_session.EVENTS
    kinds = {event.event_type.split(".")[0] for event in tail(out / "hot", n=report.records)}
    assert kinds == {"param", "trade", "sys"}
    printed = capsys.readouterr().out
    assert f"OK: 2 file(s), {demo_session.EVENTS} record(s)" in printed


def test_running_the_demo_twice_replaces_its_own_trail(tmp_path, capsys):
    out = tmp_path / "demo_trail"
    demo_session.main(out)
    assert demo_session.main(out) == 0
    assert verify(out / "hot").records == demo_session.EVENTS
