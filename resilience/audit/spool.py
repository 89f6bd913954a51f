"""A local JSON-lines file that holds audit rows the database could not take yet.

Appends are fsynced per batch. Replay first renames the file aside, so rows
spooled while a replay runs land in a fresh file; a replay interrupted by a
crash leaves the renamed file, which the next replay takes first and then the
spool itself, so a leftover never holds newer rows back. A replay paused by an
outage keeps only the rows it did not settle (inserts are idempotent on the row
id, so replaying twice never duplicates).

Processes that share a spool (`resilience serve --workers N`, several sinks on one path)
append to it at any time, but replay it one at a time: a replay holds `<spool>.lock`
(`flock`), so no replay moves aside or deletes a file another is reading, and none
replaces a claimed file with a newer spool before its rows were read. An append checks,
once its lines are on disk, that the file it wrote is still the spool; if a replay moved
it aside meanwhile, the lines go again into the new spool (replayed twice, inserted once).

Rows the database rejects (bad data, not an outage) go to the dead-letter file
beside the spool (`<spool>.rejected`), one JSON line each with the error, for an
operator to inspect: they never block the rows behind them.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_ERROR_CHARS = 500


class Spool:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.replaying = self.path.with_name(self.path.name + ".replaying")
        self.dead_letter = self.path.with_name(self.path.name + ".rejected")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd = -1
        self.rows = 0
        """Rows waiting in the spool files: `recount()` sets it, appends and replays keep it
        (the sink recounts after each replay: other processes may share the files)."""

    @staticmethod
    def encode(row: dict[str, Any]) -> str:
        """One spool line; raises TypeError/ValueError for a row JSON cannot hold."""
        return json.dumps(row, separators=(",", ":")) + "\n"

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append rows durably (blocking: call it in a thread from async code)."""
        return self.append_lines([self.encode(row) for row in rows])

    def append_lines(self, lines: list[str]) -> int:
        written = self.write_lines(lines)
        self.rows += written
        return written

    def write_lines(self, lines: list[str]) -> int:
        """`append_lines` without counting them in `rows`: for a caller on another thread,
        which counts them on its own (the sink, on the event loop, in the same step as it
        lets go of them, so no moment shows them twice)."""
        if not lines:
            return 0
        data = "".join(lines).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            with open(self.path, "a+b") as file:
                if file.tell() > 0:  # a line torn by a crash must not swallow the next row
                    file.seek(-1, os.SEEK_END)
                    if file.read(1) != b"\n":
                        file.write(b"\n")
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
                if _still_named(file.fileno(), self.path):
                    return len(lines)
            # a replay (another process's) claimed the file while it was being written, and
            # may have read it before these lines: write them again to the spool now there
            # (a row replayed twice is inserted once: inserts are idempotent on its id)

    def try_lock(self) -> bool:
        """Take the replay lock (blocking IO: call it in a thread); False while another
        process or `Spool` object holds it. Held until `unlock`."""
        if self._lock_fd >= 0:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if not lock_or_close(fd):
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            os.close(fd)  # releases the flock

    def claim(self) -> Path | None:
        """The file to replay: an interrupted replay first, else the spool moved aside.
        Only under the replay lock (`try_lock`)."""
        if self.replaying.exists():
            return self.replaying
        if self.path.exists() and self.path.stat().st_size > 0:
            os.replace(self.path, self.replaying)
            return self.replaying
        return None

    @staticmethod
    def load(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
        """(rows, unreadable lines) of a claimed file; a line torn by a crash mid-write, or
        anything else that is not a JSON object, is returned for the dead-letter file."""
        rows: list[dict[str, Any]] = []
        unreadable: list[str] = []
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            for line in file:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    unreadable.append(line.rstrip("\n"))
                    continue
                if isinstance(row, dict):
                    rows.append(row)
                else:
                    unreadable.append(line.rstrip("\n"))
        return rows, unreadable

    def keep(self, path: Path, rows: list[dict[str, Any]]) -> None:
        """A paused replay: `path` now holds only the rows still to write."""
        part = path.with_name(path.name + ".part")
        with open(part, "w", encoding="utf-8") as file:
            file.writelines(self.encode(row) for row in rows)
            file.flush()
            os.fsync(file.fileno())
        os.replace(part, path)

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, row: Any, error: str) -> None:
        """Append one rejected row, with why, to the dead-letter file (blocking)."""
        entry = {
            "rejected_at": datetime.now(UTC).isoformat(),
            "error": error[:MAX_ERROR_CHARS],
            "row": row,
        }
        line = json.dumps(entry, separators=(",", ":"), default=repr) + "\n"
        self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
        with open(self.dead_letter, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())

    def pending(self) -> bool:
        return any(p.exists() and p.stat().st_size > 0 for p in (self.path, self.replaying))

    def count(self) -> int:
        """Rows (non-empty lines) in the spool and a claimed file (reads them)."""
        total = 0
        for p in (self.path, self.replaying):
            if p.exists():
                with open(p, "rb") as file:
                    total += sum(1 for line in file if line.strip())
        return total

    def recount(self) -> int:
        self.rows = self.count()
        return self.rows

    def rejected(self) -> int:
        """Rows in the dead-letter file, for the log at start (reads it)."""
        if not self.dead_letter.exists():
            return 0
        with open(self.dead_letter, "rb") as file:
            return sum(1 for line in file if line.strip())


def lock_or_close(fd: int) -> bool:
    """Take `fd`'s exclusive `flock` without waiting: False, with `fd` closed, while another
    open file holds it; any other error closes `fd` and goes on."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except BaseException:
        os.close(fd)
        raise
    return True


def _still_named(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the one at `path` (not moved aside by a claim)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
