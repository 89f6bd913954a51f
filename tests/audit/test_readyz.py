"""`/readyz` and `/metrics` tell the audit trail's truth: what waits (in memory, in the
spool), what the database rejected, and that the backlog drains when the database returns,
with no new event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from resilience.audit.database import async_database_url
from tests.audit.test_quarantine import BAD_NOTES, bad_event
from tests.audit.test_sink import events
from tests.support.gateway import start
from tests.support.servers import PostgresServer, until


@pytest.mark.postgres
async def test_readyz_shows_the_backlog_through_an_outage_and_the_quarantine(
    server: PostgresServer, tmp_path: Path
) -> None:
    async with start(tmp_path, async_database_url(server.url)) as running:
        sink = running.gateway.sink
        assert sink is not None
        sink.emit(bad_event(BAD_NOTES["nul_in_note"]))
        await until(lambda: sink.stats.quarantined == 1, timeout_s=10)
        body = (await running.http.get("/readyz")).json()
        assert body["ready"] and body["audit"]["quarantined"] == 1
        assert body["audit"]["backlog"] == {"queued": 0, "spooled": 0}

        await asyncio.to_thread(server.stop)
        for e in events(30, tenant="outage"):
            sink.emit(e)
        await until(lambda: sink.backlog()["spooled"] == 30, timeout_s=15)
        during = await running.http.get("/readyz")
        body = during.json()
        # the spool holds what the database cannot take: still serving, and it says why
        assert during.status_code == 200 and body["ready"] is True
        assert body["database"] is False and body["audit"]["database_up"] is False
        assert body["audit"]["backlog"] == {"queued": 0, "spooled": 30}
        metrics = (await running.http.get("/metrics")).text
        assert 'resilience_audit_backlog{where="spooled"} 30.0' in metrics
        assert "resilience_audit_quarantined_total 1.0" in metrics

        await asyncio.to_thread(server.start)
        await until(lambda: sink.backlog()["spooled"] == 0 and sink.stats.database_up, timeout_s=60)
        body = (await running.http.get("/readyz")).json()
        assert body["database"] is True and body["audit"]["database_up"] is True
        assert body["audit"]["backlog"] == {"queued": 0, "spooled": 0}
        assert body["audit"]["replayed"] == 30 and body["audit"]["quarantined"] == 1
