"""Child processes for tests and benches: a free port, a process with its log, waiting
for it to answer. No pytest here: `bench/crash.py` runs in bench/.venv, which has none."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
import time
from pathlib import Path

import httpx

__all__ = ["Process", "free_port", "wait_up"]


BLOCK = 500
"""Ports per test worker, below Linux's ephemeral range (32768 and up)."""


def _block() -> range:
    """This process's own ports: one block per xdist worker (`gw0`, `gw1`...), another for
    a run without xdist (a bench), from 10,000 up."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker[2:].isdigit() else 0
    start = 10_000 + (index % 40) * BLOCK
    return range(start, start + BLOCK)


_ports = itertools.cycle(_block())
for _ in range(random.randrange(BLOCK)):  # another run on the machine starts elsewhere
    next(_ports)


def free_port() -> int:
    """A port for a server about to start. Not the kernel's pick (`bind(0)`): two workers
    could each probe the same port free before either server binds it, and one test then
    talks to the other's server. Each worker takes its own block's ports in turn and skips
    one something else holds."""
    for _ in range(BLOCK):
        port = next(_ports)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {_block()}")


async def wait_up(url: str, timeout_s: float = 30.0) -> None:
    """Poll `url` until a process started in the background answers it (below 500)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(url, timeout=2)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout_s} s")


class Process:
    """A child process with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, env=self.env, stdout=out, stderr=out
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> float:
        """Signal and wait; returns seconds to exit (kills after `timeout_s`)."""
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return time.monotonic() - started
