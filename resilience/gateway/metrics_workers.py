"""`/metrics` across workers: with `PROMETHEUS_MULTIPROC_DIR` set (`resilience serve
--workers N` sets it), a scrape answers for every worker, whichever one it reaches.

Two kinds of families cross workers two ways:

- The counters and the histogram the endpoints update (`resilience_requests`, ...) are
  prometheus_client's own multiprocess files (`*.db`, per worker), summed by its
  `MultiProcessCollector`, workers that exited included, so a total never goes down.
- The families read from a worker's state when scraped (breakers, bulkheads, health, the
  audit sink: `_Live` in metrics.py) cannot be such files: a series the state drops could
  never be removed from them, and callers name some of them (`provider:model`), so they
  would grow without bound. Each worker writes a snapshot of them instead
  (`live_<pid>.json`, replaced whole, so bounded as the state is): at start, every
  `PUBLISH_INTERVAL_S`, whenever it answers a scrape (so the page shows its own state
  now) and at shutdown (its counters only). A scrape merges the snapshots: counters
  summed, exited workers' last counts included; gauges of running workers only, each
  family as `ACROSS_WORKERS` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

logger = logging.getLogger("resilience.gateway")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PUBLISH_INTERVAL_S = 5.0
"""How stale another worker's gauges may be on a page (the answering worker's are current)."""

Merge = Literal["sum", "min", "pid"]

ACROSS_WORKERS: dict[str, Merge] = {
    # each worker holds its own calls, gates and queue: the provider and the database see the sum
    "resilience_upstream_in_flight": "sum",
    "resilience_bulkhead_limit": "sum",
    "resilience_bulkhead_in_flight": "sum",
    "resilience_bulkhead_waiting": "sum",
    "resilience_audit_backlog": "sum",
    # true of the gateway only while true of every worker
    "resilience_breaker_store_shared": "min",
    "resilience_audit_database_up": "min",
    "resilience_alerts_receiver_up": "min",
}
"""How a gauge read from each worker's state crosses workers. Any other gauge is given per
worker, with a `pid` label: breaker counts by state (views of the same breakers when Redis
shares them, separate breakers when in memory: no sum is right for both), the event loop's
tasks (a leak or a stall is one loop's), and the health windows (an error rate or a latency
quantile of one worker's recent calls can be neither added nor averaged)."""


def shared_directory(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The directory the workers share, or None when this process answers for itself alone.

    prometheus_client chooses file-backed values when it is imported, from the same variable,
    so it must be set before the process starts (the CLI's parent does)."""
    given = environ.get(MULTIPROC_ENV)
    if not given:
        return None
    if values.ValueClass is values.MutexValue:
        raise RuntimeError(
            f"{MULTIPROC_ENV} was set after prometheus_client was imported, so this process's "
            "counters are not in the shared directory; set it before the process starts"
        )
    return Path(given)


def clear_directory(directory: Path) -> None:
    """Remove what an earlier run left (prometheus_client requires an empty directory at
    start); other files, which a directory an operator chose may hold, are left alone."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (*directory.glob("*.db"), *directory.glob("live_*.json*")):
        stale.unlink(missing_ok=True)


class WorkerMetrics:
    """One worker's side: its snapshot written, and the page merged from every worker's."""

    def __init__(
        self, directory: Path, live: Collector, *, interval_s: float = PUBLISH_INTERVAL_S
    ) -> None:
        self.directory = directory
        self._live = live
        self._interval_s = interval_s
        self._taken = 0
        """Snapshots taken; each is numbered, so an older one never replaces a newer one."""
        self._written = 0
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=str(directory))  # type: ignore[no-untyped-call]
        self.registry.register(_Snapshots(directory))

    def snapshot(self, *, counters_only: bool = False) -> tuple[int, str]:
        """This worker's live families, numbered (on the event loop: it reads the state)."""
        families = [
            {
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "samples": [[s.name, s.labels, s.value] for s in family.samples],
            }
            for family in self._live.collect()
            if family.type == "counter" or not counters_only
        ]
        self._taken += 1
        return self._taken, json.dumps(families, separators=(",", ":"))

    def write(self, snapshot: tuple[int, str]) -> None:
        """Replace this worker's file with `snapshot` unless a newer one is there (blocking)."""
        number, text = snapshot
        path = self.directory / f"live_{os.getpid()}.json"
        with self._lock:
            if number <= self._written:
                return
            partial = path.with_name(path.name + ".partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)
            self._written = number

    async def page(self, render: Callable[[Collector], bytes]) -> bytes:
        """The page of every worker, this one's state as of now."""
        snapshot = self.snapshot()
        return await asyncio.to_thread(self._write_and_render, snapshot, render)

    def _write_and_render(
        self, snapshot: tuple[int, str], render: Callable[[Collector], bytes]
    ) -> bytes:
        try:
            self.write(snapshot)
        except OSError as exc:
            logger.warning("metrics: could not write this worker's snapshot (%s)", exc)
        return render(self.registry)

    def start(self) -> None:
        """Once the worker's lifespan has started: its snapshot written now, then every interval."""
        self.write(self.snapshot())
        self._task = asyncio.create_task(self._every_interval(), name="metrics-snapshots")

    async def aclose(self) -> None:
        """Once the lifespan has ended (the audit sink flushed): the counters only, so the
        worker's gauges leave the page and its final counts stay; the process marked dead."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            self.write(self.snapshot(counters_only=True))
        except Exception:
            logger.exception("metrics: could not write this worker's last snapshot")
        finally:
            _mark_dead(os.getpid(), self.directory)

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await asyncio.to_thread(self.write, self.snapshot())
            except Exception:  # a full disk must not end the publishing for good
                logger.exception("metrics: could not write this worker's snapshot")


class _Snapshots(Collector):
    """Every worker's snapshot, merged: counters summed over all, gauges per `ACROSS_WORKERS`
    over the running ones."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._marked: set[int] = set()
        """Exited workers already marked dead with prometheus_client."""

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        series: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for pid, snapshot in self._read():
            running = _running(pid)
            if not running and pid not in self._marked:
                self._marked.add(pid)
                with contextlib.suppress(OSError):  # another scrape removed its files first
                    _mark_dead(pid, self._directory)
            for family in snapshot:
                name, kind = family["name"], family["type"]
                if kind != "counter" and not running:
                    continue
                merge: Merge = "sum" if kind == "counter" else ACROSS_WORKERS.get(name, "pid")
                families.setdefault(name, Metric(name, family["help"], kind))
                found = series.setdefault(name, {})
                for sample, labels, value in family["samples"]:
                    if merge == "pid":
                        labels = {**labels, "pid": str(pid)}
                    key = (sample, tuple(labels.items()))
                    if key not in found:
                        found[key] = value
                    elif merge == "sum":
                        found[key] += value
                    elif merge == "min":
                        found[key] = min(found[key], value)
        for name, merged in families.items():
            for (sample, labels), value in series[name].items():
                merged.add_sample(sample, dict(labels), value)
            yield merged

    def _read(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        for path in sorted(self._directory.glob("live_*.json")):
            try:
                pid = int(path.name.removeprefix("live_").removesuffix(".json"))
                snapshot = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:  # not one of ours: skipped, not fatal
                logger.warning("metrics: %s skipped (%s)", path, exc)
                continue
            if _well_formed(snapshot):
                yield pid, snapshot
            else:
                logger.warning("metrics: %s skipped (not a snapshot)", path)


def _well_formed(snapshot: Any) -> bool:
    """Whether `snapshot` is a list of families as `WorkerMetrics.snapshot` writes them."""
    return isinstance(snapshot, list) and all(
        isinstance(family, dict)
        and all(isinstance(family.get(key), str) for key in ("name", "type", "help"))
        and isinstance(family.get("samples"), list)
        and all(
            isinstance(sample, list)
            and len(sample) == 3
            and isinstance(sample[0], str)
            and isinstance(sample[1], dict)
            and isinstance(sample[2], int | float)
            for sample in family["samples"]
        )
        for family in snapshot
    )


def _mark_dead(pid: int, directory: Path) -> None:
    """prometheus_client's bookkeeping for an exited process (its `live*` gauge files)."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
