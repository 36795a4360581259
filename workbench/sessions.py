"""Run identity: the sessions a NautilusTrader observer recorded, and what differs between two of them.

Each run the ``AuditObserver`` records opens with ``sys.session_start`` (code version and git
commit, Ledgerline and NautilusTrader versions, environment, the strategy and engine
configuration with its SHA-256, the data set, the seed) and closes with ``sys.session_end``
(record counts). Both functions here read those few records eagerly.

Examples
--------
>>> import shutil, tempfile
>>> from audit_core import AuditConfig, AuditEventEmitter
>>> from workbench import open_trail, session_config_diff, sessions
>>> base = tempfile.mkdtemp()
>>> with AuditEventEmitter(AuditConfig(base_path=base)) as emitter:
...     for session_id, seed in (("a1", 7), ("b2", 8)):
...         _ = emitter.emit_system("sys.session_start", "AuditObserver", {
...             "session_id": session_id, "seed": seed, "configuration_hash": "h",
...             "configuration": {"strategies": [{"fast": 10}]}})
>>> trail = open_trail(base)
>>> list(sessions(trail)["session_id"])
['a1', 'b2']
>>> session_config_diff(trail, "a1", "b2")[["field", "first", "second"]].values.tolist()
[['seed', '7', '8']]
>>> shutil.rmtree(base)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchInputError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.trail import Trail

#: Columns of ``sessions``: identity from ``sys.session_start``, counts from ``sys.session_end``.
SESSION_COLUMNS = (
    "session_id", "started_ns", "ended_ns", "stream", "trader_id", "environment", "ledgerline_version",
    "nautilus_trader_version", "code_version", "git_commit", "configuration_hash", "dataset", "seed",
    "records", "failures",
)
#: Fields of ``sys.session_start`` that say what produced a run (``session_config_diff`` compares them).
IDENTITY_FIELDS = ("environment", "sync_trades", "ledgerline_version", "nautilus_trader_version", "code_version",
                   "git_commit", "configuration_hash", "dataset", "seed")


def sessions(trail: Trail) -> pd.DataFrame:
    """One row per recorded session, in start order; eager (reads the session records only).

    Returns
    -------
    pandas.DataFrame
        Columns ``SESSION_COLUMNS``; ``ended_ns``, ``records`` and ``failures`` are empty for a
        session with no ``sys.session_end`` (still running, or the process died). ``dataset`` is
        JSON text when the run named its data with a mapping. ``attrs["verification"]`` says how
        verified the trail is.
    """
    import pandas as pd

    starts, ends, frame = _session_records(trail)
    rows = []
    for session_id, (record, payload) in starts.items():
        end = ends.get(session_id)
        dataset = payload.get("dataset")
        rows.append({
            "session_id": session_id, "started_ns": record["ts_event"],
            "ended_ns": None if end is None else end[0]["ts_event"],
            "stream": record["stream"], "trader_id": record["trader_id"],
            **{name: payload.get(name) for name in SESSION_COLUMNS[5:12]},
            "dataset": dataset if dataset is None or isinstance(dataset, str) else json.dumps(dataset, sort_keys=True),
            "seed": payload.get("seed"),
            "records": None if end is None else end[1].get("records"),
            "failures": None if end is None else end[1].get("failures"),
        })
    result = pd.DataFrame(rows, columns=list(SESSION_COLUMNS))
    result.attrs.update(frame.attrs)
    return result


def session_config_diff(trail: Trail, first: str, second: str) -> pd.DataFrame:
    """What differs between two sessions' identities and configurations; eager.

    Compares ``IDENTITY_FIELDS`` and every leaf of the recorded configuration (``configuration.
    engine.…``, ``configuration.strategies[0].…``): a field one session has and the other lacks
    differs too. Values are shown as JSON text.

    Parameters
    ----------
    trail
        The opened trail holding both sessions.
    first, second
        ``session_id`` values (``sessions(trail)``).

    Returns
    -------
    pandas.DataFrame
        Columns ``field``, ``first``, ``second``, one row per differing field in field order;
        empty when the two runs were configured alike. ``attrs["verification"]`` as for the trail.

    Raises
    ------
    WorkbenchInputError
        A session id that is not in the trail (the message lists those that are).
    """
    import pandas as pd

    starts, _, frame = _session_records(trail)
    flat = []
    for session_id in (first, second):
        if session_id not in starts:
            raise WorkbenchInputError(
                f"session_id {session_id!r} is not in the trail; recorded sessions: {sorted(starts) or 'none'}")
        payload = starts[session_id][1]
        fields = {name: payload.get(name) for name in IDENTITY_FIELDS}
        _flatten(payload.get("configuration"), "configuration", fields)
        flat.append(fields)
    names = list(dict.fromkeys([*flat[0], *flat[1]]))
    rows = [
        {"field": name, "first": _text(flat[0].get(name, _MISSING)), "second": _text(flat[1].get(name, _MISSING))}
        for name in names if flat[0].get(name, _MISSING) != flat[1].get(name, _MISSING)
    ]
    result = pd.DataFrame(rows, columns=["field", "first", "second"])
    result.attrs.update(frame.attrs)
    return result


def _session_records(trail: Trail) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """session_id -> (record, payload) of the starts and the ends, and the frame they came from."""
    t = trail.filter(event_type=["sys.session_start", "sys.session_end"], check=False)
    frame = t.select("ts_event", "event_type", "stream", "sequence", "trader_id", "payload").order_by(
        "ts_event", "stream", "sequence").to_pandas()
    starts: dict[str, Any] = {}
    ends: dict[str, Any] = {}
    for record in frame.to_dict("records"):
        try:
            payload = json.loads(record["payload"])
        except (TypeError, ValueError):
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("session_id"), str):
            continue  # not a session record the observer wrote; nothing to identify it by
        target = starts if record["event_type"] == "sys.session_start" else ends
        target.setdefault(payload["session_id"], (record, payload))
    return starts, ends, frame


def _flatten(value: Any, prefix: str, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}", into)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", into)
    else:
        into[prefix] = value


_MISSING = object()  # a field one session has and the other lacks


def _text(value: Any) -> str | None:
    return None if value is _MISSING else json.dumps(value, sort_keys=True)
