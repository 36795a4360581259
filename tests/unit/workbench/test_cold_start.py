"""What ``open_trail`` keeps per process (issue 19, cold start), and that nothing kept is believed for other bytes.

Footer summaries are kept per footer bytes (``workbench._footers``), "is this hot file converted?"
per the bytes of its seal and manifest entry and the keys (``workbench._converted``), the view's
SQL per definition (``_backend.events_view``). Each test opens a trail once (so that something is
kept), changes files, and opens it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import duckdb
import pyarrow.parquet as pq
import pytest

from audit_core.cold.manifest import MANIFEST_DIR
from workbench import TrailNotVerifiedWarning, UnreadableFileWarning, _backend, _converted, _footers, open_trail
from workbench.trail import HotSnapshot, _definition, cold_schema


def count(trail) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrailNotVerifiedWarning)
        return int(trail.events.count().execute())


def parquet_files(base):
    return sorted((base / "cold").glob("year=*/month=*/day=*/*.parquet"))


def edit_in_place(path, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (same length) in ``path``, its size and timestamps as they were (but ctime)."""
    assert len(old) == len(new)
    info = path.stat()
    data = path.read_bytes()
    assert data.count(old) >= 1
    os.chmod(path, 0o644)
    path.write_bytes(data.replace(old, new, 1))
    os.chmod(path, info.st_mode)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size


class TestFooters:
    def test_a_reopened_trail_parses_no_footer_again(self, hand_trail, monkeypatch):
        hand_trail.convert()
        open_trail(hand_trail.base, verify=False)
        parsed = []
        parse = _footers._parse
        monkeypatch.setattr(_footers, "_parse", lambda file: parsed.append(file) or parse(file))
        trail = open_trail(hand_trail.base, verify=False)
        assert parsed == [] and count(trail) == hand_trail.events
        assert trail._time_range is not None

    def test_a_rewritten_file_is_read_again(self, hand_trail):
        hand_trail.convert()
        assert open_trail(hand_trail.base)._time_range is not None
        file = parquet_files(hand_trail.base)[0]
        pq.write_table(pq.read_table(file), file, write_statistics=False)  # the same rows, no min/max
        assert open_trail(hand_trail.base, verify=False)._time_range is None

    def test_a_file_given_other_columns_is_read_by_name(self, hand_trail):
        hand_trail.convert()
        assert count(open_trail(hand_trail.base)) == hand_trail.events
        files = parquet_files(hand_trail.base)
        named = sum(pq.read_table(file).column("param_name").drop_null().length() for file in files[1:])
        assert named > 0
        pq.write_table(pq.read_table(files[0]).drop_columns(["param_name"]), files[0])
        trail = open_trail(hand_trail.base, verify=False)
        # Had the kept summary said "same columns", DuckDB would have taken the first file's (no param_name).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrailNotVerifiedWarning)
            names = trail.events.param_name.execute()
        assert names.notna().sum() == named and count(trail) == hand_trail.events

    def test_a_truncated_file_is_left_out_and_named(self, hand_trail):
        hand_trail.convert()
        open_trail(hand_trail.base)
        file = parquet_files(hand_trail.base)[0]
        file.write_bytes(file.read_bytes()[:-100])
        with pytest.warns(UnreadableFileWarning, match=file.name):
            open_trail(hand_trail.base, verify=False)

    def test_the_summary_is_what_pyarrow_reads_from_the_file(self, hand_trail):
        hand_trail.convert()
        for file in parquet_files(hand_trail.base):
            footer = _footers._parse(_footers._footer_bytes(file))
            metadata = pq.read_metadata(file)
            stats = [metadata.row_group(group).column(0).statistics for group in range(metadata.num_row_groups)]
            assert metadata.schema.column(0).path == "ts_event"
            # A flat file: its leaf paths are its column names.
            assert footer.columns == tuple(sorted(metadata.schema.to_arrow_schema().names))
            assert footer.extent == (min(s.min for s in stats), max(s.max for s in stats))

    def test_files_whose_columns_differ_only_in_nesting_count_as_different_columns(self, tmp_path):
        """Leaf names alike (``a.b``, ``b``; ``x.y``, ``y``) do not make two column sets the same: read by name."""
        import pyarrow as pa

        nested = tmp_path / "nested.parquet"
        flat = tmp_path / "flat.parquet"
        pq.write_table(pa.table({"ts_event": [1], "a": [{"b": 1}]}), nested)
        pq.write_table(pa.table({"ts_event": [2], "b": [1], "a": [1]}), flat)
        columns, damaged, extent = _footers.read_footers([nested, flat])
        assert columns == {("a.b", "ts_event"), ("a", "b", "ts_event")}
        assert damaged == [] and extent == [1, 2]

    @pytest.mark.parametrize("tail", [b"", b"PAR1", b"\xff\xff\xff\x7fPAR1", b"\x00\x00\x00\x00PAR1", b"x" * 20])
    def test_a_file_that_is_not_parquet_is_named_not_raised(self, tmp_path, tail):
        file = tmp_path / "f.parquet"
        file.write_bytes(b"PAR1" + tail)
        columns, damaged, extent = _footers.read_footers([file])
        assert columns == set() and extent == [None, None]
        assert [path for path, _ in damaged] == [file] and "not a readable Parquet file" in damaged[0][1]


class TestConvertedFiles:
    """A kept answer is for the bytes it was given: an edited entry or seal is checked again."""

    def test_an_entry_edited_in_place_after_an_open_no_longer_hides_its_hot_file(self, hand_trail):
        hand_trail.convert()
        assert open_trail(hand_trail.base).hot.files == []
        entry_file = sorted((hand_trail.base / "cold" / MANIFEST_DIR).glob("*.json"))[0]
        entry = json.loads(entry_file.read_text())
        rows = entry["outputs"][0]["rows"]
        assert rows < 9
        # The same size and mtime: only the bytes tell.
        edit_in_place(entry_file, f'"rows": {rows}'.encode(), f'"rows": {rows + 1}'.encode())
        trail = open_trail(hand_trail.base, verify=False)
        assert [file.name for file in trail.hot.files] == [entry["source"]]
        assert count(trail) == hand_trail.events  # its rows also in cold count once

    def test_a_seal_edited_after_an_open_makes_its_hot_file_read(self, hand_trail):
        hand_trail.convert()
        open_trail(hand_trail.base)
        hot_file = sorted((hand_trail.base / "hot").glob("*.jsonl"))[0]
        seal = hot_file.with_name(hot_file.name + ".seal")
        root = json.loads(seal.read_text())["merkle_root"]
        edit_in_place(seal, root.encode(), root[::-1].encode())  # still a seal: no longer the entry's copy
        trail = open_trail(hand_trail.base, verify=False)
        assert trail.hot.files == [hot_file] and count(trail) == hand_trail.events

    def test_a_seal_broken_after_an_open_is_named(self, hand_trail):
        hand_trail.convert()
        open_trail(hand_trail.base)
        hot_file = sorted((hand_trail.base / "hot").glob("*.jsonl"))[0]
        edit_in_place(hot_file.with_name(hot_file.name + ".seal"), b'"format"', b'"Format"')
        with pytest.warns(UnreadableFileWarning, match="cannot tell whether it was converted"):
            trail = open_trail(hand_trail.base, verify=False)
        assert trail.hot.files == [hot_file] and count(trail) == hand_trail.events

    def test_an_entry_checked_with_other_keys_is_checked_again(self, hand_trail):
        hand_trail.convert()
        assert open_trail(hand_trail.base).hot.files == []
        # Unkeyed entries, checked with a key: their checksum is not that key's HMAC.
        trail = open_trail(hand_trail.base, hmac_key=b"another key", verify=False)
        assert len(trail.hot.files) == len(list((hand_trail.base / "hot").glob("*.jsonl")))

    def test_a_missing_output_makes_its_hot_file_read(self, hand_trail):
        hand_trail.convert()
        open_trail(hand_trail.base)
        entry_file = sorted((hand_trail.base / "cold" / MANIFEST_DIR).glob("*.json"))[0]
        entry = json.loads(entry_file.read_text())
        (hand_trail.base / "cold" / entry["outputs"][0]["path"]).unlink()
        trail = open_trail(hand_trail.base, verify=False)
        assert [file.name for file in trail.hot.files] == [entry["source"]]
        assert count(trail) == hand_trail.events

    def test_an_output_outside_the_day_partitions_hides_nothing(self, hand_trail):
        """An unkeyed entry rewritten (its plain checksum recomputed) to name a Parquet file the trail's
        view does not read (outside ``year=/month=/day=``): the hot file's rows are read, not lost."""
        from audit_core.cold.manifest import write_entry

        hand_trail.convert()
        cold = hand_trail.base / "cold"
        entry_file = sorted((cold / MANIFEST_DIR).glob("*.json"))[0]
        entry = json.loads(entry_file.read_text())
        output = cold / entry["outputs"][0]["path"]
        output.rename(cold / "elsewhere.parquet")
        entry["outputs"][0]["path"] = "elsewhere.parquet"
        write_entry(cold, {k: v for k, v in entry.items() if k != "manifest_checksum"})
        trail = open_trail(hand_trail.base, verify=False)
        assert [file.name for file in trail.hot.files] == [entry["source"]]
        assert count(trail) == hand_trail.events

    def test_the_answer_is_kept_per_bytes(self, hand_trail):
        hand_trail.convert()
        _converted.clear()
        open_trail(hand_trail.base)
        kept = len(_converted._kept)
        assert kept == len(list((hand_trail.base / "hot").glob("*.jsonl")))
        open_trail(hand_trail.base)
        assert len(_converted._kept) == kept


def manifest_checks(monkeypatch) -> list[str]:
    """The ``what`` of every ``check_document`` call from now on (the real check runs): from now on in this
    process nothing is kept, as in a new process."""
    from audit_core.trust import documents

    _converted.clear()
    calls: list[str] = []
    check = documents.check_document
    monkeypatch.setattr(documents, "check_document",
                        lambda *args, **kwargs: calls.append(kwargs.get("what", "")) or check(*args, **kwargs))
    return calls


def keyed_trail(base, key: bytes):
    """Two days of an HMAC-keyed trail, both converted with the key (root written after each)."""
    from conftest import T0, S

    from audit_core import AuditConfig, AuditEventEmitter
    from audit_core.cold.converter import ParquetConverter

    now = [T0]
    with AuditEventEmitter(AuditConfig(base_path=base, sync_writes=False, hmac_key=key.decode()),
                           clock=lambda: now[0]) as audit:
        for day in range(2):
            now[0] = T0 + day * 86_400 * S
            for value in range(3):
                audit.emit_param_change("meta", "k", value, value + 1, "test", ts_event=now[0] + value)
    converter = ParquetConverter(base / "hot", base / "cold", hmac_key=key)
    assert all(result.converted for result in converter.convert_all())


class TestTheColdRootVouches:
    """A new process's open: the cold root, checked once, vouches for the entries it commits to
    (``audit_core.cold.manifest.vouched_entries``); any other entry is checked in full, as before."""

    def test_an_entry_the_root_commits_to_is_not_authenticated_again(self, hand_trail, monkeypatch):
        hand_trail.convert()
        calls = manifest_checks(monkeypatch)
        trail = open_trail(hand_trail.base, verify=False)
        assert trail.hot.files == [] and count(trail) == hand_trail.events
        assert calls == ["cold root"]

    def test_an_entry_edited_after_the_root_was_written_is_read_from_hot(self, hand_trail, monkeypatch):
        hand_trail.convert()
        entry_file = sorted((hand_trail.base / "cold" / MANIFEST_DIR).glob("*.json"))[0]
        entry = json.loads(entry_file.read_text())
        digest = entry["outputs"][0]["sha256"]
        # Still in its form, rows still those of the seal: only the entry's bytes tell.
        edit_in_place(entry_file, digest.encode(), digest[::-1].encode())
        calls = manifest_checks(monkeypatch)
        trail = open_trail(hand_trail.base, verify=False)
        assert [file.name for file in trail.hot.files] == [entry["source"]]
        assert count(trail) == hand_trail.events and calls.count("manifest entry") == 1

    def test_a_root_forged_without_the_key_vouches_for_nothing(self, tmp_path, monkeypatch):
        from audit_core.cold.manifest import ROOT_CHECKSUM, root_path
        from audit_core.trust import documents

        key = b"workbench-test-key"
        keyed_trail(tmp_path, key)
        assert open_trail(tmp_path, hmac_key=key, verify=False).hot.files == []
        entry_file = sorted((tmp_path / "cold" / MANIFEST_DIR).glob("*.json"))[0]
        entry = json.loads(entry_file.read_text())
        entry["outputs"][0]["sha256"] = "0" * 64  # its HMAC as it was: the attacker has no key
        entry_file.write_text(json.dumps(entry, indent=1))
        root = json.loads(root_path(tmp_path / "cold").read_text())
        for item in root["manifests"]:
            if item["path"].endswith(entry_file.name):
                item["sha256"] = hashlib.sha256(entry_file.read_bytes()).hexdigest()
        root_path(tmp_path / "cold").write_text(json.dumps(documents.authenticate(root, ROOT_CHECKSUM, b"not the key")))
        calls = manifest_checks(monkeypatch)
        trail = open_trail(tmp_path, hmac_key=key, verify=False)
        assert [file.name for file in trail.hot.files] == [entry["source"]]
        assert count(trail) == 6 and calls.count("manifest entry") == 2  # every entry checked in full

    def test_a_stale_root_falls_back_to_the_full_check(self, hand_trail, monkeypatch):
        from audit_core.cold.converter import ParquetConverter
        from audit_core.cold.manifest import root_path

        hand_trail.convert(only_jan5=True)
        older_root = root_path(hand_trail.base / "cold").read_bytes()
        before = len(list((hand_trail.base / "cold" / MANIFEST_DIR).glob("*.json")))
        ParquetConverter(hand_trail.base / "hot", hand_trail.base / "cold").convert_all()
        root_path(hand_trail.base / "cold").write_bytes(older_root)  # commits to the first day's entries only
        calls = manifest_checks(monkeypatch)
        trail = open_trail(hand_trail.base, verify=False)
        assert trail.hot.files == [] and count(trail) == hand_trail.events
        added = len(list((hand_trail.base / "cold" / MANIFEST_DIR).glob("*.json"))) - before
        assert added > 0 and calls.count("manifest entry") == added

    def test_trusted_keys_with_windows_check_every_entry(self, tmp_path, monkeypatch):
        from conftest import T0

        from audit_core import AuditConfig, AuditEventEmitter
        from audit_core.cold.converter import ParquetConverter
        from audit_core.trust.keyring import TrustedKeys
        from audit_core.trust.signing import generate_keypair, load_private_key, load_public_key

        generate_keypair(tmp_path / "w.key", tmp_path / "w.pub")
        public_key = load_public_key(tmp_path / "w.pub")
        with AuditEventEmitter(AuditConfig(base_path=tmp_path / "t", sync_writes=False,
                                           signing_key_path=tmp_path / "w.key"), clock=lambda: T0) as audit:
            audit.emit_param_change("meta", "k", 1, 2, "test", ts_event=T0)
        assert ParquetConverter(tmp_path / "t" / "hot", tmp_path / "t" / "cold", public_key=public_key,
                                signing_key=load_private_key(tmp_path / "w.key")).convert_all()[0].converted
        for keys, entry_checks in ((public_key, 0), (TrustedKeys.from_public_key(public_key), 1)):
            calls = manifest_checks(monkeypatch)
            trail = open_trail(tmp_path / "t", public_key=keys, verify=False)
            assert trail.hot.files == [] and count(trail) == 1
            assert calls.count("manifest entry") == entry_checks


class TestViewDefinitions:
    def test_a_reopened_trail_creates_the_same_view_without_building_it(self, hand_trail):
        hand_trail.convert(only_jan5=True)
        first, second = open_trail(hand_trail.base), open_trail(hand_trail.base)
        assert first._definition is not None and second._definition is None  # the kept SQL was used
        sql = [trail.backend.con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?",
                                         [trail.events.op().name]).fetchone()[0] for trail in (first, second)]
        assert sql[0].replace(first.events.op().name, "v") == sql[1].replace(second.events.op().name, "v")
        assert count(second) == count(first) == hand_trail.events
        assert second.events.schema() == first.events.schema()

    @pytest.mark.parametrize("damaged", [False, True], ids=["glob", "files-by-name"])
    def test_the_view_written_without_ibis_is_the_one_ibis_compiles(self, hand_trail, damaged):
        hand_trail.convert()
        if damaged:  # the others are then read by name
            file = parquet_files(hand_trail.base)[0]
            file.write_bytes(file.read_bytes()[:-100])
        backend = _backend.connect_default()
        left_out: list = []
        cold = _backend.read_cold(backend, hand_trail.base / "cold", left_out)
        assert len(left_out) == int(damaged)
        schema = cold_schema()
        direct = _backend.cold_view_sql(backend, cold, schema.names)
        view, sql = _backend._duckdb_view(backend, _definition(backend, cold, None, HotSnapshot(), schema))
        assert direct is not None
        assert direct[0] == sql  # to the character
        assert direct[1] == view.schema() and list(direct[1].items()) == list(view.schema().items())

    def test_a_converted_trail_opens_without_building_its_definition(self, hand_trail):
        hand_trail.convert()
        _backend._VIEWS.clear()
        trail = open_trail(hand_trail.base)
        assert trail.hot.rows == 0 and trail._definition is None
        assert count(trail) == hand_trail.events
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrailNotVerifiedWarning)
            assert trail.events.schema() == _backend._duckdb_view(trail.backend, _definition(
                trail.backend, _backend.read_cold(trail.backend, hand_trail.base / "cold"), None, HotSnapshot(),
                cold_schema()))[0].schema()

    def test_files_with_other_columns_are_left_to_ibis(self, hand_trail):
        hand_trail.convert()
        file = parquet_files(hand_trail.base)[0]
        pq.write_table(pq.read_table(file).drop_columns(["param_name"]), file)
        backend = _backend.connect_default()
        assert _backend.cold_view_sql(backend, _backend.read_cold(backend, hand_trail.base / "cold"),
                                      cold_schema().names) is None
        for _ in range(2):  # built by Ibis, then from the kept SQL
            assert count(open_trail(hand_trail.base, verify=False)) == hand_trail.events

    def test_hot_rows_that_changed_are_read(self, hand_trail):
        hand_trail.convert()
        assert open_trail(hand_trail.base).hot.rows == 0
        hand_trail.forget_conversion_of("2026-01-06")
        trail = open_trail(hand_trail.base)
        assert trail.hot.rows > 0 and count(trail) == hand_trail.events

    def test_two_trails_on_one_connection_keep_their_own_hot_rows(self, hand_trail, tmp_path):
        from conftest import write_hand_trail

        other = write_hand_trail(tmp_path / "other")
        other.convert(only_jan5=True)
        hand_trail.convert(only_jan5=True)
        hand_trail.forget_conversion_of("2026-01-05")  # all hot: more hot rows than the other trail
        con = duckdb.connect()
        mine, theirs = open_trail(hand_trail.base, con), open_trail(other.base, con)
        assert mine.hot.rows != theirs.hot.rows
        assert count(mine) == hand_trail.events and count(theirs) == other.events

    def test_an_empty_trail_opened_again_has_its_own_empty_table(self, tmp_path):
        (tmp_path / "cold").mkdir()
        for _ in range(2):  # the second once failed: the first's SQL named the first connection's table
            trail = open_trail(tmp_path)
            assert count(trail) == 0 and "ts_event" in trail.events.columns
