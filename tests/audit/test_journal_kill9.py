"""`kill -9` of the gateway under 200 concurrent clients loses no audit row and no usage row.

The run itself (the processes, the clients, the counting) is `bench/crash.py`'s
`kill9_run`, whose docstring says what it measures and how it knows, without the
database, which rows must be there: every call's own `x-request-id` for usage, answered
admin calls and unbroken breaker trails for the transitions.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.crash import kill9_run


@pytest.mark.postgres
async def test_kill_9_under_200_clients_loses_and_doubles_no_row(
    pg_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    report = await kill9_run(tmp_path, pg_url, clients=200, load_s=4.0)
    summary = "\n".join([*report.lines(), f"({time.monotonic() - started:.0f} s)"])
    assert len(report.answered) > 100 and report.cut, summary  # load, and a kill amid it
    assert report.opened >= 10 and report.closed >= 3, summary  # breakers open and close
    assert report.recovered > 0, summary  # the kill left rows only the journal had
    assert report.usage_lost == 0 and report.usage_unknown == 0, summary
    assert report.audit_lost == 0 and report.chain_breaks == 0, summary
    assert report.duplicates == 0, summary
    assert sum(report.admin_answered.values()) > 0, summary
