"""The README's first command, in its short mode: it runs, and its audit summary is real."""

from __future__ import annotations

import re

import pytest

from resilience.gateway.demo import run_demo


async def test_the_demo_routes_around_the_outage_and_reports_open_and_closed_periods(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run_demo(fast=True) == 0
    out = capsys.readouterr().out
    summary = re.search(r"summary: (\d+) open periods closed again, (\d+) still open", out)
    assert summary is not None
    assert int(summary.group(1)) >= 1 and int(summary.group(2)) >= 1
    assert out.count("errors none") == 5  # no request failed in any of the five phases
    assert "-- admin_actions: 1 rows" in out and "suspected abuse" in out
    wide = re.search(r"-- provider_wide_outages: (\d+) rows", out)
    assert wide is not None and int(wide.group(1)) >= 1
