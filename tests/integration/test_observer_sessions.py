"""Run identity and the recording rule on real BacktestEngines.

``sys.session_start`` says what produced a run (versions, commit, configuration and its hash,
data set, seed) and ``sys.session_end`` counts what was recorded; the workbench tells two runs'
configurations apart. With ``environment="live"``/``"sandbox"`` the observer records from its
recording thread and syncs every trade record, and the trail is the same event for event.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

import nautilus_trader
import pytest
from nautilus_scenario import ScenarioConfig, ScenarioStrategy, build_engine, quotes
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from test_observer import assert_trail_matches_engine, run_backtest

from audit_core import AuditConfig, verify
from audit_core._layout import stream_checkpoint_path
from audit_core.integrations._recording import BACKTEST_CHECKPOINT_INTERVAL_S
from audit_core.integrations.observer import data_fingerprint
from audit_core.trust.stream_tree import read_note
from workbench import open_trail, session_config_diff, sessions

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENT = InstrumentId.from_str("EUR/USD.SIM")
ENGINE = {"venue": "SIM", "oms_type": "NETTING", "account_type": "MARGIN", "starting_balance": "1000000 USD"}


def identified(ticks: int, seed: int = 7):
    """A setup callback that names the run the way a user would before ``engine.run()``."""
    def setup(_engine, strategy, observer):
        instrument = TestInstrumentProvider.default_fx_ccy("EUR/USD")
        observer.identify_run(engine_config=ENGINE, strategy_configs=[strategy.config],
                              dataset=data_fingerprint(quotes(instrument, ticks, 60_000_000_000)), seed=seed)
    return setup


def strategy(trade_every: int) -> ScenarioStrategy:
    return ScenarioStrategy(ScenarioConfig(instrument_id=INSTRUMENT, trade_every=trade_every))


def test_session_records_say_what_produced_the_run_and_count_what_it_recorded(tmp_path):
    run = run_backtest(tmp_path, ticks=400, strategy=strategy(20), setup=identified(400))
    assert_trail_matches_engine(run)

    start, end = run.rows[0], run.rows[-1]
    assert (start["event_type"], end["event_type"]) == ("sys.session_start", "sys.session_end")
    identity = start["payload"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert identity["git_commit"].removesuffix("+dirty") == head
    assert identity["nautilus_trader_version"] == nautilus_trader.__version__
    assert identity["ledgerline_version"] == metadata.version("ledgerline")
    assert (identity["environment"], identity["sync_trades"], identity["seed"]) == ("backtest", False, 7)
    assert identity["configuration"]["engine"] == ENGINE
    assert identity["configuration"]["strategies"][0]["trade_every"] == 20
    canonical = json.dumps(identity["configuration"], sort_keys=True, separators=(",", ":"))
    assert identity["configuration_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert identity["dataset"].startswith("sha256:") and identity["dataset"].endswith(":400")

    totals = end["payload"]
    assert totals["session_id"] == identity["session_id"]
    assert totals["records"] == len(run.rows) - 1  # every record before the end itself
    assert totals["records_by_type"] == dict(Counter(row["event_type"] for row in run.rows[:-1]))
    assert totals["failures"] == 0


def test_two_runs_are_told_apart_by_their_configuration(tmp_path):
    for stream, every in (("run-a", 20), ("run-b", 10)):
        run_backtest(tmp_path, ticks=300, stream_id=stream, strategy=strategy(every), setup=identified(300))
    trail = open_trail(tmp_path)
    table = sessions(trail)
    assert list(table["stream"]) == ["BACKTESTER-001.run-a", "BACKTESTER-001.run-b"]
    assert table["configuration_hash"].nunique() == 2
    assert table["dataset"].nunique() == 1  # the same quotes
    assert list(table["records"]) == [int(n) for n in table["records"]] and (table["failures"] == 0).all()
    first, second = table["session_id"]

    diff = session_config_diff(trail, first, second)
    by_field = {row.field: (row.first, row.second) for row in diff.itertuples()}
    assert by_field.pop("configuration.strategies[0].trade_every") == ("20", "10")
    assert set(by_field) == {"configuration_hash"}
    assert session_config_diff(trail, first, first).empty
    assert "verified" in diff.attrs["verification"]
    with pytest.raises(ValueError, match="session_id 'nope' is not in the trail; recorded sessions"):
        session_config_diff(trail, first, "nope")


@pytest.mark.parametrize("environment", ["live", "sandbox"])
def test_live_and_sandbox_record_off_the_loop_and_sync_every_trade(tmp_path, environment):
    engine, _, observer = build_engine(str(tmp_path), ticks=400, observer_config={"environment": environment})
    published = []
    engine.kernel.msgbus.subscribe(topic="events.position.*", handler=published.append)
    engine.run()
    writer = observer.emitter.writer
    # Checkpointed as any emitter's stream is (every 2 s by default).
    assert observer.emitter.config.checkpoint_interval_s == AuditConfig(base_path=tmp_path).checkpoint_interval_s
    orders = list(engine.cache.orders())
    engine.dispose()  # the recording thread drains, then the trail closes
    syncs = writer.stats.syncs

    rows = [json.loads(line) for path in sorted((tmp_path / "hot").glob("*.jsonl"))
            for line in path.read_bytes().splitlines()]
    trades = [row for row in rows if row["event_type"].startswith("trade.")]
    fills = sum(type(e).__name__ == "OrderFilled" for o in orders for e in o.events)
    assert sum(row["event_type"] == "trade.fill" for row in trades) == fills > 0
    assert sum(row["event_type"].startswith("trade.position_") for row in trades) == len(published)
    assert observer.recorder is not None  # the recording thread did the writing
    stats = observer.recorder.stats
    assert stats.submitted == stats.completed  # everything queued was written before it closed
    assert observer.recorded == len(rows)
    assert stats.failed == observer.failures == 0
    assert syncs >= len(trades)  # each trade record synced (concurrent syncs may merge, never skip)
    assert rows[0]["payload"]["environment"] == environment and rows[0]["payload"]["sync_trades"] is True
    assert [row["sequence"] for row in rows] == list(range(len(rows)))
    report = verify(tmp_path)
    assert report.ok, report.failures


def test_a_backtest_checkpoints_its_stream_once_when_the_trail_closes_covering_every_line(tmp_path):
    engine, _, observer = build_engine(str(tmp_path), ticks=1_600, trade_every=3)
    engine.run()
    config, writer = observer.emitter.config, observer.emitter.writer
    assert config.checkpoint_interval_s == BACKTEST_CHECKPOINT_INTERVAL_S
    time.sleep(AuditConfig(base_path=tmp_path).checkpoint_interval_s + 0.5)  # a live stream's would have one now
    assert writer.checkpointer.checkpoints == 0
    engine.dispose()
    assert (writer.checkpointer.checkpoints, writer.checkpointer.failures) == (1, 0)
    lines = sum(len(path.read_bytes().splitlines()) for path in (tmp_path / "hot").glob("*.jsonl"))
    note = stream_checkpoint_path(tmp_path / "hot", config.trader_id, config.stream_id).read_text()
    assert read_note(note).size == lines > 0  # the close checkpoint covers every line of both days
    assert len(list((tmp_path / "hot").glob("*.jsonl"))) == 2
    report = verify(tmp_path)
    assert report.ok, report.failures


def test_a_backtest_written_in_batches_has_the_bytes_of_one_written_record_by_record(tmp_path):
    """Batches of 7 records straddle the simulated midnight (1,600 one-minute quotes from 00:00):
    every record keeps its ts_recorded and its day's file, and the trail is the same bytes."""
    trails = {}
    for batch in (1, 7):
        base = tmp_path / f"batch-{batch}"
        engine, _, observer = build_engine(str(base), ticks=1_600, trade_every=3,
                                           observer_config={"backtest_batch": batch})
        engine.run()
        engine.dispose()
        assert observer.failures == 0
        trails[batch] = {path.name: path.read_bytes() for path in sorted((base / "hot").glob("*.jsonl"))}
    assert len(trails[1]) == 2  # two simulated days, two files
    assert trails[7] == trails[1]
    assert verify(tmp_path / "batch-7").ok


def test_the_observer_keeps_per_order_constants_only_while_the_order_is_open(tmp_path):
    """Ids, side and type are read once per order and forgotten when it closes: memory does not
    grow with the orders a backtest has filled, and each record still names its own order."""
    engine, _, observer = build_engine(str(tmp_path), ticks=600, trade_every=3)
    engine.run()
    open_orders = {order.client_order_id for order in engine.cache.orders() if not order.is_closed}
    kept = set(observer._orders)
    filled = sum(order.is_closed for order in engine.cache.orders())
    engine.dispose()
    assert filled > 100
    assert kept <= open_orders
    assert observer.failures == 0


def test_a_batch_of_no_records_is_refused_by_name(tmp_path):
    engine, _, _ = build_engine(str(tmp_path), ticks=10, observer_config={"backtest_batch": 0})
    try:
        with pytest.raises(ValueError, match=r"backtest_batch must be >= 1 .*, got 0"):
            engine.run()
    finally:
        engine.dispose()
