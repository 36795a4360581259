"""The id filter of a cold file: a Bloom filter over its order and correlation ids, for ``trade_lifecycle``.

A manifest output records it as ``ids`` (``manifest.py``)::

    {"bits": m, "hashes": k, "filter": <base64 of m bits, bit i in byte i // 8 at 1 << (i % 8)>}

An id ``v`` sets bits ``(h1 % m + i * (h2 % m)) % m`` for ``i`` in ``0..k-1`` (Kirsch-Mitzenmacher double
hashing), where ``h1``/``h2`` are the little-endian integers of the last/first 8 bytes of MD5(UTF-8 of
``v``): DuckDB's ``md5_number_lower``/``md5_number_upper``, so the converter sets the bits in SQL and
the workbench tests one id in Python, both by this module. MD5 is a spreading function here, not a
security boundary: the filter is authenticated by the manifest entry, and ``verify_cold`` derives it
again from the file's rows and reports a difference. A filter that says no is exact (the file holds
no row with that id); one that says yes may be wrong about ``FALSE_POSITIVES`` of the time, which
costs a file read, never an answer.
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

#: The columns whose values the filter holds (``trade_lifecycle`` finds a trade's rows by them).
ID_COLUMNS = ("order_id", "correlation_id")
#: Bits per id and hashes for about 1% false positives (m/n = 9.6, k = 7).
BITS_PER_ID = 9.6
HASHES = 7
#: The smallest filter, so a file with few ids still says no to most.
MIN_BITS = 64
#: The largest filter (2^27 bits, 16 MiB): a file with more ids than that holds records no filter.
MAX_BITS = 1 << 27


def _bits_for(count: int) -> int:
    return max(MIN_BITS, math.ceil(count * BITS_PER_ID / 8) * 8)


def id_filter(con: Any, rows: str, parameters: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The ``ids`` of the rows ``rows`` (SQL of a relation with ``ID_COLUMNS``), on DuckDB ``con``.

    None when the file holds too many ids for ``MAX_BITS`` (its output then records none, and the
    workbench reads its day whole).
    """
    import numpy as np

    values = f"""(SELECT DISTINCT v FROM (SELECT order_id AS v FROM {rows} UNION ALL
                                          SELECT correlation_id FROM {rows}) WHERE v IS NOT NULL)"""
    (count,) = con.execute(f"SELECT count(*) FROM {values}", parameters or {}).fetchone() or (0,)
    bits = _bits_for(int(count))
    if bits > MAX_BITS:
        return None
    # Both halves of each id's MD5 from DuckDB, the positions in numpy: the same integers as
    # (h1 % m + i * (h2 % m)) % m in SQL (no uint64 overflow: m <= 2^27), without DuckDB's 128-bit
    # arithmetic over ids x hashes rows (about 1 us each).
    halves = con.execute(f"SELECT md5_number_lower(v) AS h1, md5_number_upper(v) AS h2 FROM {values}",
                         parameters or {}).fetchnumpy()
    first, second = (np.asarray(halves[name], dtype=np.uint64) for name in ("h1", "h2"))
    modulus = np.uint64(bits)
    first, step = first % modulus, second % modulus
    flags = np.zeros(bits, dtype=bool)
    for i in range(HASHES):
        flags[(first + np.uint64(i) * step) % modulus] = True
    array = np.packbits(flags, bitorder="little")  # bit i in byte i // 8 at 1 << (i % 8)
    return {"bits": bits, "hashes": HASHES, "filter": base64.b64encode(array.tobytes()).decode("ascii")}


class IdFilter:
    """A recorded ``ids`` read back (``parse``); ``may_contain`` tests one id."""

    def __init__(self, bits: int, hashes: int, data: bytes) -> None:
        self.bits, self.hashes, self.data = bits, hashes, data

    def may_contain(self, value: str) -> bool:
        """False if no row of the file has ``value`` in ``ID_COLUMNS``; True if one may."""
        digest = hashlib.md5(value.encode("utf-8"), usedforsecurity=False).digest()
        first = int.from_bytes(digest[8:], "little") % self.bits
        step = int.from_bytes(digest[:8], "little") % self.bits
        for i in range(self.hashes):
            position = (first + i * step) % self.bits
            if not self.data[position >> 3] & (1 << (position & 7)):
                return False
        return True


def parse(value: Any) -> IdFilter | None:
    """A manifest output's ``ids`` if in its form (untrusted input), else None (it vouches for nothing)."""
    if not isinstance(value, dict) or set(value) != {"bits", "hashes", "filter"}:
        return None
    bits, hashes, encoded = value["bits"], value["hashes"], value["filter"]
    if not (isinstance(bits, int) and isinstance(hashes, int) and isinstance(encoded, str)) or isinstance(
            bits, bool) or isinstance(hashes, bool):
        return None
    if not (MIN_BITS <= bits <= MAX_BITS and bits % 8 == 0 and 1 <= hashes <= 32):
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except ValueError:
        return None
    if len(data) != bits // 8:
        return None
    return IdFilter(bits, hashes, data)
