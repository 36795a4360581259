"""Parsing the JSON the core reads back (seals, manifests, legal holds, proofs) into AuditFormatError on failure.

``json.loads`` fails in several ways on crafted input: ``JSONDecodeError``, ``UnicodeDecodeError``
(bytes it takes for UTF-16 or UTF-32), ``ValueError`` for an integer of more than 4,300 digits, and
``RecursionError`` for deeply nested arrays. Each becomes one ``AuditFormatError`` naming the file.
What parses is also refused when it nests deeper than ``MAX_DEPTH``: every format the core writes
is shallow, and a deep document would raise ``RecursionError`` later, when it is serialized again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from audit_core.errors import AuditFormatError

#: Deepest nesting accepted: a manifest (entry, seal copy or output list, output) needs 3.
MAX_DEPTH = 16


def loads(data: bytes | str, path: str | os.PathLike[str], what: str, line: int | None = None) -> Any:
    """``data`` parsed as JSON.

    Raises:
        AuditFormatError: not JSON, not UTF-8, or nested deeper than ``MAX_DEPTH``; names ``path``.
    """
    try:
        value = json.loads(data)
    except RecursionError:
        raise AuditFormatError(path, f"{what} is nested too deeply to parse", line) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise AuditFormatError(path, f"{what} is not valid JSON: {exc}", line) from None
    if _deeper_than(value, MAX_DEPTH):
        raise AuditFormatError(path, f"{what} nests deeper than {MAX_DEPTH} levels", line)
    return value


def read(path: Path, what: str) -> Any:
    """The JSON document in file ``path``. OSError if it cannot be read; AuditFormatError as ``loads``."""
    return loads(path.read_bytes(), path, what)


def read_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in file ``path``; AuditFormatError if it is anything else."""
    return loads_object(path.read_bytes(), path, what)


def loads_object(data: bytes, path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``data`` (the bytes of file ``path``); AuditFormatError if it is anything else."""
    value = loads(data, path, what)
    if not isinstance(value, dict):
        raise AuditFormatError(path, f"{what}: expected a JSON object, got {type_name(value)}")
    return value


def type_name(value: object) -> str:
    """The JSON name of a parsed value's type, for expected-vs-got messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number"}.get(
        type(value), type(value).__name__
    )


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
