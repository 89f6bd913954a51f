"""The journal: every audit row on disk before `emit` returns, so `kill -9` loses none.

`DatabaseSink` appends each breaker transition and usage record, as one JSON line (the
spool's format), to the journal's active segment with one `write(2)` before
`emit`/`emit_usage` returns. Once that returns, the line is in the kernel's page cache:
it survives the death of the process (`kill -9`, the OOM killer) though no byte of it
reached the database yet. What survives a crash of the whole machine is `fsync`'s call:

- `"never"`: nothing is forced to disk. The kernel writes dirty pages back within about
  30 s (`vm.dirty_expire_centisecs`), so a power loss can lose the rows of the last ~30 s
  the database had not taken yet. No cost anywhere.
- `"batch"` (the default): the writer `fdatasync`s the active segment once per batch, on
  a worker thread, so a power loss loses at most the rows of one batch window
  (`batch_age_s`, 0.2 s by default). No cost on the request path; one disk flush per batch
  (every 0.2 s at most under load, none when idle).
- `"always"`: `fdatasync` before `emit` returns: a power loss loses nothing acknowledged.
  Each breaker transition and each finished call then waits for the disk on the event
  loop: ~0.05-0.5 ms on a local SSD, milliseconds on network volumes, for every request.

Trimming: the writer settles rows (committed to the database, fsynced to the spool, or
quarantined) and tells the journal how many of each segment it settled. The active
segment, once every row in it is settled, is truncated to nothing; when it passes
`segment_bytes` with rows still in flight it is sealed and a new one begun, and a sealed
segment is deleted once its last row is settled. So the journal holds only rows in
flight: a fraction of a second's worth, or an outage's worth when neither the database
nor the spool takes rows.

Recovery: each process holds an exclusive `flock` on its active segment, which dies with
the process. On start, every segment no live process holds is a leftover of a killed
one: `DatabaseSink.start` moves its lines into the spool, whose replay inserts them
idempotently (rows keep their ids). Several processes may share one journal folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from datetime import UTC
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import Literal, get_args

from resilience.audit.spool import lock_or_close
from resilience.audit.usage_schema import usage_params
from resilience.breaker.events import BreakerTransition
from resilience.usage.record import UsageRecord

logger = logging.getLogger("resilience.audit")

FsyncPolicy = Literal["never", "batch", "always"]
FSYNC_POLICIES: tuple[str, ...] = get_args(FsyncPolicy)

SEGMENT_BYTES = 16 * 1024 * 1024
"""A segment with rows in flight is sealed past this size (a new one takes the appends)."""

TABLE_KEY = "_table"
"""In a journal or spool line, which table the row goes to; absent: `breaker_events`."""
USAGE_TABLE = "usage_records"

_PREFIX = "journal-"
_SUFFIX = ".jsonl"


def fsync_policy(value: str) -> FsyncPolicy:
    """`value` checked against the policies (for settings read from the environment)."""
    if value == "never":
        return "never"
    if value == "batch":
        return "batch"
    if value == "always":
        return "always"
    raise ValueError(f"journal fsync: expected one of {', '.join(FSYNC_POLICIES)}, got {value!r}")


class Journal:
    """The segment files in `directory`; see the module docstring.

    Not thread-safe: `append`, `settle`, `maintain` and `close` run on the event loop;
    `sync` alone may run on a worker thread.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "batch",
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.fsync: FsyncPolicy = fsync_policy(fsync)
        self._always = self.fsync == "always"
        self.segment_bytes = segment_bytes
        self.errors = 0
        """Appends that failed (the row then waits in memory only, as without a journal)."""
        self.ok = True
        """Whether the last append (or opening a segment) succeeded."""
        self._fd = -1
        self._seq = 0
        self._path: Path | None = None
        self._bytes = 0
        self._in_flight = 0
        """Rows appended to the active segment and not settled yet."""
        self._sealed: dict[int, tuple[Path, int, int]] = {}
        """Sealed segments with rows in flight: seq -> (path, fd holding the lock, rows)."""
        self._leftovers: dict[Path, int] = {}
        """Segments of dead processes, locked by us until `discard`."""
        self._dirty = False
        self._name = uuid.uuid4().hex[:12]

    # -- start and stop --------------------------------------------------------------------

    def open(self) -> list[Path]:
        """Begin a segment of this process's own; return the leftovers of dead processes
        (locked now, so no other process takes them too). Blocking: call it in a thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        leftovers: list[Path] = []
        for hidden in self.directory.glob(f".{_PREFIX}*.new"):  # a start that died naming it
            fd = _lock(hidden)
            if fd is not None:
                hidden.unlink(missing_ok=True)
                os.close(fd)
        for path in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            if path == self._path or path in self._leftovers:
                continue
            fd = _lock(path)
            if fd is not None:
                self._leftovers[path] = fd
                leftovers.append(path)
        if self._fd < 0:
            self._begin()
        return leftovers

    def close(self) -> None:
        """Release the active segment; delete it when nothing in it is in flight."""
        for seq in list(self._sealed):
            path, fd, _ = self._sealed.pop(seq)
            os.close(fd)  # rows still in flight: the segment stays, a leftover for a restart
        fd, self._fd = self._fd, -1
        if fd >= 0:
            if self._in_flight == 0 and self._path is not None:
                self._path.unlink(missing_ok=True)
            os.close(fd)
        self._path = None
        for path in list(self._leftovers):
            os.close(self._leftovers.pop(path))

    # -- the request path ------------------------------------------------------------------

    def append(self, line: bytes) -> int:
        """Write one line (ending in a newline); the segment it is in, for `settle`, or -1
        when it could not be written (counted in `errors`, logged once). Never raises."""
        fd = self._fd
        if fd < 0:
            return -1
        try:
            written = os.write(fd, line)
            if written != len(line):
                _finish(fd, line, written)
            if self._always:
                os.fdatasync(fd)
        except OSError as exc:
            self._failed(exc)
            return -1
        self._bytes += written
        self._in_flight += 1
        self._dirty = True
        if not self.ok:
            self._recovered()
        return self._seq

    # -- the writer ------------------------------------------------------------------------

    def settle(self, counts: dict[int, int]) -> None:
        """`counts[seq]` rows of segment `seq` are settled: delete a sealed segment with
        none left in flight (the active one is trimmed by `maintain`)."""
        for seq, n in counts.items():
            if seq == self._seq:
                self._in_flight -= n
            elif seq in self._sealed:
                path, fd, rows = self._sealed[seq]
                if rows <= n:
                    del self._sealed[seq]
                    path.unlink(missing_ok=True)
                    os.close(fd)
                else:
                    self._sealed[seq] = (path, fd, rows - n)

    def maintain(self) -> None:
        """Truncate the active segment when all its rows are settled; seal it for a new one
        when it grew past `segment_bytes` with rows still in flight."""
        if self._fd < 0 or self._bytes == 0:
            return
        try:
            if self._in_flight <= 0:
                os.ftruncate(self._fd, 0)
                self._bytes = 0
                self._in_flight = 0
            elif self._bytes >= self.segment_bytes:
                assert self._path is not None
                self._sealed[self._seq] = (self._path, self._fd, self._in_flight)
                self._fd = -1
                self._begin()
        except OSError as exc:
            self._failed(exc)

    def sync(self) -> None:
        """`fdatasync` the active segment if rows were appended since the last (blocking)."""
        fd = self._fd
        if not self._dirty or fd < 0:
            return
        self._dirty = False
        try:
            os.fdatasync(fd)
        except OSError:
            self._dirty = True  # a closed or rotated descriptor: the next batch tries again

    @property
    def dirty(self) -> bool:
        """Rows appended since the last `sync`."""
        return self._dirty

    @property
    def in_flight(self) -> int:
        """Rows in the journal not settled yet."""
        return self._in_flight + sum(rows for _, _, rows in self._sealed.values())

    # -- recovery --------------------------------------------------------------------------

    @staticmethod
    def read(path: Path) -> list[str]:
        """The lines of a leftover segment (each ending in a newline). A last line without
        its newline is a write the killed process never finished, so never acknowledged:
        kept when it is a whole JSON object, else dropped with a warning."""
        data = path.read_bytes()
        lines = data.decode("utf-8", errors="surrogateescape").splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            torn = lines.pop()
            try:
                complete = isinstance(json.loads(torn), dict)
            except ValueError:
                complete = False
            if complete:
                lines.append(torn + "\n")
            elif torn.strip():
                logger.warning("audit: dropped a torn last line of %s (%d bytes)", path, len(torn))
        return [line for line in lines if line.strip()]

    def discard(self, path: Path) -> None:
        """A leftover whose lines are safe elsewhere (the spool): delete it."""
        path.unlink(missing_ok=True)
        fd = self._leftovers.pop(path, -1)
        if fd >= 0:
            os.close(fd)

    # -- internals -------------------------------------------------------------------------

    def _begin(self) -> None:
        """A fresh segment, locked before it takes its name: a starting process never
        mistakes it for a leftover."""
        self._seq += 1
        path = self.directory / f"{_PREFIX}{self._name}-{self._seq:06d}{_SUFFIX}"
        hidden = self.directory / f".{path.name}.new"
        try:
            fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.replace(hidden, path)
            except OSError:
                os.close(fd)
                raise
        except OSError as exc:
            self._failed(exc)
            return
        self._fd, self._path, self._bytes, self._in_flight = fd, path, 0, 0

    def _recovered(self) -> None:
        self.ok = True
        logger.warning("audit: the journal in %s takes rows again", self.directory)

    def _failed(self, exc: OSError) -> None:
        self.errors += 1
        if self.ok:
            self.ok = False
            logger.error(
                "audit: cannot write the journal in %s (%s); rows wait in memory until "
                "the database or the spool takes them",
                self.directory,
                exc,
            )

    def __repr__(self) -> str:
        return f"Journal({str(self.directory)!r}, fsync={self.fsync!r})"


def _lock(path: Path) -> int | None:
    """An fd holding `path`'s exclusive lock, or None while a live process holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if not lock_or_close(fd):
        return None
    if not path.exists():  # deleted by its owner between the glob and the lock
        os.close(fd)
        return None
    return fd


def _finish(fd: int, line: bytes, written: int) -> None:
    """The rest of a short write; on failure, end the torn line so the next row stands on
    a line of its own."""
    view = memoryview(line)
    try:
        while written < len(line):
            written += os.write(fd, view[written:])
    except OSError:
        if written:
            with contextlib.suppress(OSError):
                os.write(fd, b"\n")
        raise


# -- lines ---------------------------------------------------------------------------------
# The request path pays for these: written by hand, they cost a third of
# `json.dumps(to_row(event))` and parse to the very same dict (tests/audit/test_journal.py).

_compact = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _unencodable(value: object) -> None:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_dict(value: dict[str, object]) -> str:
    """`_compact(value)` for a dict, through the C encoder straight (half the cost)."""
    return "".join(_c_dict(value, 0)) if _c_dict is not None else _compact(value)


_c_dict = (
    c_make_encoder(None, _unencodable, _quote, None, ":", ",", False, False, True)
    if c_make_encoder is not None
    else None
)


def event_line(event: BreakerTransition) -> bytes:
    """`Spool.encode(to_row(event))`, as bytes, fast."""
    kind = event.error_kind
    detail = event.detail
    cooldown = event.cooldown_s
    actor = event.actor
    request = event.request_id
    details = _compact_dict(detail if type(detail) is dict else dict(detail)) if detail else "{}"
    return (
        f'{{"id":"{event.id}","occurred_at":"{event.occurred_at.isoformat()}",'
        f'"tenant_id":{_quote(event.tenant_id)},"provider":{_quote(event.provider)},'
        f'"from_state":{_quote(str(event.from_state))},"to_state":{_quote(str(event.to_state))},'
        f'"reason":{_quote(str(event.reason))},'
        f'"error_kind":{_quote(str(kind)) if kind else "null"},"failures":{int(event.failures)},'
        f'"cooldown_s":{"null" if cooldown is None else _number(cooldown)},'
        f'"actor":{"null" if actor is None else _quote(actor)},'
        f'"request_id":{"null" if request is None else _quote(request)},'
        f'"detail":{details}}}\n'
    ).encode("ascii")


def usage_line(record: UsageRecord) -> bytes:
    """`Spool.encode({**usage_params(record), TABLE_KEY: USAGE_TABLE})`, as bytes, fast."""
    latency = record.latency_ms
    if latency != latency or latency in (_INF, -_INF):
        return (_compact({**usage_params(record), TABLE_KEY: USAGE_TABLE}) + "\n").encode()
    occurred = record.occurred_at
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return (
        f'{{"id":"{record.id}","occurred_at":"{occurred.isoformat()}",'
        f'"tenant_id":{_quote(record.tenant_id)},"route":{_quote(record.route)},'
        f'"provider":{_text(record.provider)},"model":{_text(record.model)},'
        f'"input_tokens":{_count(record.input_tokens)},'
        f'"output_tokens":{_count(record.output_tokens)},'
        f'"cached_tokens":{_count(record.cached_tokens)},"latency_ms":{float(latency)!r},'
        f'"outcome":{_quote(record.outcome)},"request_id":{_text(record.request_id)},'
        f'"streamed":{"true" if record.streamed else "false"},"{TABLE_KEY}":"{USAGE_TABLE}"}}\n'
    ).encode("ascii")


_INF = float("inf")


def _text(value: str | None) -> str:
    return "null" if value is None else str(_quote(value))


def _count(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _number(value: float | None) -> str:
    if value is None or value != value or value in (_INF, -_INF):
        return "null"
    return repr(value)
