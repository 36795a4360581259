"""Shared test helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from audit_core import AppendOnlyWriter

# CI runs the property tests on a fixed set of examples, so a run is reproducible; explore new
# examples locally with HYPOTHESIS_PROFILE=explore (random seeds, more examples).
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _verification_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The workbench's verification cache goes to a temporary directory, never the user's ~/.cache.

    Session-scoped, so that it is in place before module-scoped fixtures open trails; subprocesses
    (the demo, notebooks) inherit it.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


def simulate_crash(target: Any) -> None:
    """Leave a writer (or an emitter's writer) as SIGKILL would, but in-process.

    Its file descriptors are closed and its stream lock released; nothing queued is written,
    nothing is synced beyond what already was, and nothing is sealed. Bytes already passed to
    ``os.write`` stay (they are in the page cache, as after a real kill). The subprocess tests in
    tests/integration use a real SIGKILL; this keeps unit tests fast.
    """
    writer: AppendOnlyWriter = getattr(target, "writer", target)
    writer._stop_flusher.set()
    writer._wake_flusher.set()
    writer._flusher.join()
    writer.checkpointer.kill()
    with writer._cond:
        writer._closed = True
    if writer._fd >= 0:
        os.close(writer._fd)
        writer._fd = -1
    writer._spill.close()
    writer._release_stream()


@pytest.fixture
def crash() -> Callable[[Any], None]:
    return simulate_crash
