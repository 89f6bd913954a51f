"""The gateway under load with every fault kind, a database outage and SIGTERM (bounded).

`bench/soak.py` runs the same harness for longer with more clients; see `load.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.load import FAULTS, GRACE_S, LoadPlan, LoadReport, run_load


def assert_clean(report: LoadReport) -> None:
    assert report.requests > 300, report.lines()
    assert sum(report.unclean.values()) == 0, (report.unclean, report.examples)
    assert report.server_errors == 0
    assert report.log_alarms == []
    assert report.audit_lost == 0, report.lines()
    assert report.audit_received > 0  # breakers did trip: the audit check means something


@pytest.mark.postgres
@pytest.mark.redis
async def test_200_clients_with_30_percent_faults_a_database_and_a_redis_outage(
    tmp_path: Path,
) -> None:
    plan = LoadPlan(
        clients=200,
        duration_s=12,
        postgres=True,
        postgres_outage_s=4,
        redis=True,
        redis_outage_s=3,
    )
    report = await run_load(plan, tmp_path)
    print("\n".join(report.lines()))
    assert_clean(report)
    assert set(report.faults_injected) == set(FAULTS)  # every kind, none unrecognised
    share = sum(report.faults_injected.values()) / report.upstream_requests
    assert 0.25 <= share <= 0.35, share
    assert report.outcomes["200"] > 0 and report.outcomes["200_stream"] > 0
    assert report.rss_end_kib <= 1.10 * report.rss_warm_kib, report.lines()
    assert report.fds_end <= report.fds_base + 5, report.lines()
    assert report.tasks_end == report.tasks_base, report.lines()
    assert (report.store_outages, report.store_resyncs) == (1, 1), report.lines()


async def test_sigterm_under_load_finishes_requests_and_loses_no_audit_event(
    tmp_path: Path,
) -> None:
    plan = LoadPlan(clients=100, duration_s=8, sigterm_at_s=4)
    report = await run_load(plan, tmp_path)
    print("\n".join(report.lines()))
    assert_clean(report)
    assert report.gateway_exit_s is not None and report.gateway_exit_s < GRACE_S + 2
    assert report.refused_after_sigterm > 0  # the stopped gateway really turned requests away
