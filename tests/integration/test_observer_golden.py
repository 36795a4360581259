"""The observer's records, byte for byte: representative backtests against digests of a known-good trail.

The other observer tests check what the records *mean*; this one pins their *bytes* (every field,
its spelling, the order of fields and of records, the chain), so that speed work on the observer,
the event models or the emitter cannot change a byte of a trail unnoticed. Each scenario runs a
deterministic backtest and compares the SHA-256 of its record lines, per event type and whole,
with ``observer_golden.json``, recorded per NautilusTrader release (the engine decides which
events exist, so another release may produce other records).

What would differ from one checkout to the next is pinned: ``sys.session_start`` records the
Ledgerline version and the git commit of the code, which are set to fixed values here.

An intended change of the record format re-records the digests (and says so in its commit)::

    PYTHONPATH=. python tests/integration/test_observer_golden.py --record

(``--record`` keeps the digests of other releases and replaces those of the installed one.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nautilus_trader
import pytest
from nautilus_scenario import build_engine
from nautilus_trader.model.identifiers import InstrumentId

from audit_core.hot.verifier import hot_files
from audit_core.integrations import _run_identity

GOLDEN = Path(__file__).with_name("observer_golden.json")
INSTRUMENT = "EUR/USD.SIM"


def _scenario(**options: Any) -> Callable[[Path], None]:
    def run(base: Path) -> None:
        engine, _, _ = build_engine(str(base), **options)
        try:
            engine.run()
        finally:
            engine.dispose()
    return run


def _edge_cases(base: Path) -> None:
    from test_observer import EdgeCaseConfig, EdgeCaseStrategy

    edge = EdgeCaseStrategy(EdgeCaseConfig(instrument_id=InstrumentId.from_str(INSTRUMENT), order_id_tag="003"))
    engine, _, _ = build_engine(str(base), ticks=100, trade_every=10_000)
    engine.add_strategy(edge)
    try:
        engine.run()
    finally:
        engine.dispose()


def _lifecycle(kind: str) -> Callable[[Path], None]:
    def run(base: Path) -> None:
        from test_observer_lifecycles import BracketConfig, BracketStrategy, TrailingConfig, TrailingStopStrategy

        iid = InstrumentId.from_str(INSTRUMENT)
        strategy = (BracketStrategy(BracketConfig(instrument_id=iid)) if kind == "bracket"
                    else TrailingStopStrategy(TrailingConfig(instrument_id=iid)))
        _scenario(ticks=1_500, strategy=strategy)(base)
    return run


def _venue(name: str) -> Callable[[Path], None]:
    def run(base: Path) -> None:
        from venue_scenarios import SETUPS, run_setup

        run_setup(dataclasses.replace(SETUPS[name], ticks=min(SETUPS[name].ticks, 1_500)), base)
    return run


#: Scenario -> a function that runs it with an observer writing to the given base path.
SCENARIOS: dict[str, Callable[[Path], None]] = {
    # Market fills, a resting limit order canceled, denied orders, positions; crosses a UTC midnight.
    "scenario": _scenario(ticks=1_600, trade_every=3),
    # Each record written as it is captured, not in batches. (Not the recording thread of a live or
    # sandbox node: it stamps ts_recorded when it writes, so its bytes vary from run to run.)
    "scenario_unbatched": _scenario(ticks=300, trade_every=2, observer_config={"backtest_batch": 1}),
    "partial_fills": _scenario(ticks=200, quote_size=30_000),
    "edge_cases": _edge_cases,  # a venue rejection and an expiry
    "bracket": _lifecycle("bracket"),  # stops, triggers, updates, pending updates and cancels
    "trailing_stop": _lifecycle("trailing_stop"),
    # Account types and currencies: cash, inverse, hedging, exchange rates, fees in a third currency.
    **{f"venue_{name}": _venue(name) for name in (
        "netting_margin", "hedging_margin", "cash", "inverse_perpetual", "usdjpy_on_usd", "third_currency_fees")},
}


@contextmanager
def _pinned_identity() -> Iterator[None]:
    """``sys.session_start`` without what changes between checkouts (the version, the git commit)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_run_identity, "ledgerline_version", lambda: "golden")
        patch.setattr(_run_identity, "git_commit", lambda path: None)
        yield


def trail_digests(hot: Path) -> dict[str, Any]:
    """Record count, SHA-256 of all record lines in file order, and of each event type's lines."""
    whole = hashlib.sha256()
    by_type: dict[str, Any] = {}
    count = 0
    for path in hot_files(hot):
        for line in path.read_bytes().splitlines(keepends=True):
            whole.update(line)
            count += 1
            event_type = json.loads(line)["event_type"]
            by_type.setdefault(event_type, hashlib.sha256()).update(line)
    return {"records": count, "sha256": whole.hexdigest(),
            "by_type": {name: digest.hexdigest() for name, digest in sorted(by_type.items())}}


def run_scenario(name: str, base: Path) -> dict[str, Any]:
    with _pinned_identity():
        SCENARIOS[name](base)
    return trail_digests(base / "hot")


def _recorded() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_records_are_byte_identical_to_the_recorded_trail(name, tmp_path):
    release = _recorded().get(nautilus_trader.__version__)
    # No digests for this release: nothing to compare with, which is a failure, not a pass or a skip
    # (this test is not among the Makefile's NAUTILUS_TESTS, which run on the latest release).
    assert release is not None, (f"no digests recorded for nautilus_trader {nautilus_trader.__version__}: check "
                                 "its records, then record them with --record (see the module docstring)")
    expected = release[name]
    got = run_scenario(name, tmp_path)
    differing = sorted(name for name in expected["by_type"].keys() | got["by_type"].keys()
                       if expected["by_type"].get(name) != got["by_type"].get(name))
    assert (got["records"], differing) == (expected["records"], []), "records differ from the recorded trail"
    assert got == expected


def test_the_digests_see_a_changed_byte(tmp_path):
    """One byte changed in one record changes the whole digest and that event type's, nothing else."""
    SCENARIOS["edge_cases"](tmp_path)
    before = trail_digests(tmp_path / "hot")
    path = hot_files(tmp_path / "hot")[0]
    path.chmod(0o640)  # sealed files are read-only
    data = path.read_bytes()
    at = data.index(b'"reason":"expired"')
    path.write_bytes(data[:at] + data[at:].replace(b"expired", b"exqired", 1))
    after = trail_digests(tmp_path / "hot")
    assert after["records"] == before["records"] and after["sha256"] != before["sha256"]
    assert {n for n in before["by_type"] if before["by_type"][n] != after["by_type"][n]} == {"trade.canceled"}


def _record_all() -> None:
    import tempfile

    digests = {}
    for name in sorted(SCENARIOS):
        with tempfile.TemporaryDirectory() as tmp:
            digests[name] = run_scenario(name, Path(tmp))
        print(f"{name}: {digests[name]['records']} records")
    golden = _recorded()
    golden[nautilus_trader.__version__] = digests
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    _record_all()
