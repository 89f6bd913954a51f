"""A lean HTTP/1.1 client: one keep-alive pool per provider, on the event loop's own transports.

Why: on the gateway's same-format path the request body is already bytes and the answer
goes back as bytes, so what remains per request is the HTTP exchange itself. httpx2 spends
most of the gateway's CPU on it (its client, httpcore's pool and h11, anyio streams, with a
cancel scope per read); this client writes the request head and body in one `write` and
parses the answer as it arrives in `data_received`, so the exchange costs a fraction of
that (docs/architecture.md "The lean HTTP/1.1 client").

What it does, as httpx2 would: keep-alive reuse (a connection goes back to the pool only
when its answer was read to the end and neither side asked to close), idle connections
expire after `KEEPALIVE_S`, `max_connections` with a pool timeout, connect, read, write
and pool timeouts, TLS with httpx2's default context (certifi, `SSL_CERT_FILE`), bodies
framed by `content-length`, `chunked` or the connection's close, and `gzip`/`deflate`
bodies decoded when a server sends them unasked. It raises httpx2's own exceptions
(`ConnectError`, `ReadTimeout`, `RemoteProtocolError`...), so `resilience.classify` reads
a failure here exactly as it reads one from httpx2. It calls
`resilience.providers.sending.mark_sent()` when a request is handed to the pool, where
httpx2 calls its request hooks: a connection refused is the provider's failure.

What it does not do, so the adapter keeps httpx2 for it (`usable_for`): proxies (any
`*_PROXY` variable set), credentials in the URL, HTTP/2, redirects (the providers' APIs do
not redirect), cookies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import NamedTuple, cast
from urllib.parse import urlsplit

import httpx2

from resilience.errors import ResponseTooLarge
from resilience.providers.sending import mark_sent

KEEPALIVE_S = 4.0
"""How long an idle connection is kept. Servers close idle connections on their own
schedule, uvicorn (vLLM and most Python servers) and Node.js after 5 s: a request written
on a connection just as the server closes it fails although the server never read it,
and counts against the provider. The server's 5 s start when it finished the answer,
ours when this process had read it, later by however far its event loop lagged: httpx2's
5 s left that lag as the window; 4 s leaves a second of margin."""
MAX_HEAD_BYTES = 64 * 1024
"""The longest status line plus headers accepted from an upstream."""
HIGH_WATER = 1024 * 1024
"""Buffered answer bytes at which reading pauses until the consumer catches up."""

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
_BAD_HEADER = re.compile(r"[\r\n\x00]")
_NO_BODY = frozenset({204, 304})
_DIGITS = re.compile(r"[0-9]{1,18}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Timeouts(NamedTuple):
    """Seconds, as httpx2's `Timeout`: None waits for ever."""

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None

    @classmethod
    def of(cls, timeout: httpx2.Timeout) -> Timeouts:
        return cls(timeout.connect, timeout.read, timeout.write, timeout.pool)


def usable_for(base_url: str) -> bool:
    """Whether this client can reach `base_url` as httpx2 would: http(s), no credentials
    in the URL, and no proxy configured in the environment (httpx2 would use it)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    environ = os.environ
    return not any(environ.get(name) or environ.get(name.upper()) for name in _PROXY_VARIABLES)


class Origin(NamedTuple):
    """Where a pool connects, and the `host` header it sends."""

    scheme: str
    host: str
    port: int
    authority: bytes

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url: expected an http:// or https:// URL, got {url!r}")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        authority = shown if port == default else f"{shown}:{port}"
        return cls(parts.scheme, host, port, authority.encode("ascii"))


class Prepared(NamedTuple):
    """A request head without its `content-length`: the request line, `host` and the
    headers every request of a kind sends, encoded once (`Pool.prepare`)."""

    method: str
    head: bytes


def header_lines(headers: Mapping[str, str]) -> bytes:
    """`name: value\\r\\n` for each header; one that could split the head is refused, and
    the ones this client sets itself (host, framing) are left out."""
    lines: list[bytes] = []
    for name, value in headers.items():
        if _BAD_HEADER.search(name) or _BAD_HEADER.search(value) or ":" in name:
            raise httpx2.LocalProtocolError(f"header {name!r}: a name or value that splits lines")
        if name.lower() in _OWN_HEADERS:
            continue
        lines.append(name.encode("ascii") + b": " + _header_bytes(value) + b"\r\n")
    return b"".join(lines)


_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def _header_bytes(value: str) -> bytes:
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        return value.encode("utf-8")


class Head(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    """Names lowercased, in the order received."""
    reusable: bool
    """The connection may carry another request after this answer."""


def parse_head(raw: bytes) -> Head:
    """A status line and headers (without the blank line that ends them)."""
    lines = raw.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise httpx2.RemoteProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    code = status_line[1]
    if len(code) != 3 or not code.isdigit():
        raise httpx2.RemoteProtocolError(f"bad status code: {code[:10]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        raw_name, sep, raw_value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(raw_name):
            raise httpx2.RemoteProtocolError(f"bad header line: {line[:80]!r}")
        headers.append((raw_name.decode("latin-1").lower(), raw_value.strip().decode("latin-1")))
    keep = status_line[0] == b"HTTP/1.1"
    for name, value in headers:
        if name == "connection":
            tokens = {token.strip().lower() for token in value.split(",")}
            if "close" in tokens:
                keep = False
            elif "keep-alive" in tokens:
                keep = True
    return Head(int(code), headers, keep)


class _Framing(NamedTuple):
    kind: str  # "length", "chunked", "close" or "none"
    length: int


def _framing(head: Head, method: str) -> _Framing:
    if method == "HEAD" or head.status in _NO_BODY or head.status < 200:
        return _Framing("none", 0)
    lengths: set[str] = set()
    for name, value in head.headers:
        if name == "transfer-encoding":
            if value.lower().rsplit(",", 1)[-1].strip() == "chunked":
                return _Framing("chunked", 0)
            return _Framing("close", 0)
        if name == "content-length":
            lengths.update(part.strip() for part in value.split(","))
    if not lengths:
        return _Framing("close", 0)
    if len(lengths) != 1 or not _DIGITS.fullmatch(next(iter(lengths))):
        raise httpx2.RemoteProtocolError(f"bad content-length: {sorted(lengths)!r}")
    return _Framing("length", int(lengths.pop()))


class Connection(asyncio.Protocol):
    """One keep-alive connection, parsing its current answer as bytes arrive."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        """The loop it belongs to: a pool kept across `asyncio.run` calls reuses none of it
        in another."""
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.closed = False
        self.returned = False
        """Counted out of its pool (discarded): never twice."""
        self._buffer = bytearray()
        self._head: Head | None = None
        self._method = "POST"
        self._framing = _Framing("none", 0)
        self._remaining = 0  # body bytes left ("length"), or in the current chunk
        self._chunk_state = "size"  # "size", "data", "crlf", "trailer"
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._feed(data)
        except Exception as exc:  # whatever the bytes were, the answer cannot be read
            if not isinstance(exc, httpx2.RemoteProtocolError):
                exc = httpx2.RemoteProtocolError(f"unreadable answer: {type(exc).__name__}")
            self._fail(exc)
            if self.transport is not None:
                self.transport.abort()
        self._wake()

    def eof_received(self) -> bool:
        self._ended(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)
        self.closed = True
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # parsing

    def _feed(self, data: bytes) -> None:
        if self._head is None:
            self._buffer += data
            while self._head is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD_BYTES:
                        raise httpx2.RemoteProtocolError("the answer's head is too long")
                    return
                head = parse_head(bytes(self._buffer[:end]))
                del self._buffer[: end + 4]
                if 100 <= head.status < 200:
                    continue  # an interim answer (103 Early Hints): the real one follows
                self._start(head)
            data = bytes(self._buffer)
            self._buffer.clear()
            if not data:
                return
        if self._complete:
            self._finish(reusable=False)  # bytes after a complete answer: not reused
            return
        kind = self._framing.kind
        if kind == "length":
            take = data[: self._remaining]
            self._remaining -= len(take)
            if take:
                self._push(take)
            if self._remaining == 0:
                self._finish(reusable=len(data) == len(take))
        elif kind == "chunked":
            self._feed_chunked(data)
        elif kind == "close":
            self._push(data)

    def _start(self, head: Head) -> None:
        self._head = head
        self._framing = _framing(head, self._method)
        if self._framing.kind == "none":
            self._finish(reusable=True)
        elif self._framing.kind == "length":
            self._remaining = self._framing.length
            if self._remaining == 0:
                self._finish(reusable=True)

    def _feed_chunked(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        at = 0
        while True:
            state = self._chunk_state
            if state == "data":
                available = len(buffer) - at
                if available == 0:
                    break
                take = min(available, self._remaining)
                self._push(bytes(buffer[at : at + take]))
                at += take
                self._remaining -= take
                if self._remaining == 0:
                    self._chunk_state = "crlf"
                continue
            end = buffer.find(b"\r\n", at)
            if end < 0:
                if len(buffer) - at > MAX_HEAD_BYTES:
                    raise httpx2.RemoteProtocolError("a chunk line is too long")
                break
            line = bytes(buffer[at:end])
            at = end + 2
            if state == "size":
                size_text = line.split(b";", 1)[0].strip()
                if not _HEX.fullmatch(size_text):
                    raise httpx2.RemoteProtocolError(f"bad chunk size: {line[:20]!r}")
                size = int(size_text, 16)
                if size == 0:
                    self._chunk_state = "trailer"
                else:
                    self._remaining = size
                    self._chunk_state = "data"
            elif state == "crlf":
                if line:
                    raise httpx2.RemoteProtocolError("a chunk did not end with CRLF")
                self._chunk_state = "size"
            elif not line:  # the blank line after the (ignored) trailers
                self._finish(reusable=at == len(buffer))
                break
        del buffer[:at]

    def _push(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def _finish(self, *, reusable: bool) -> None:
        self._complete = True
        if not reusable and self._head is not None:
            self._head = self._head._replace(reusable=False)

    def _ended(self, exc: Exception | None) -> None:
        if self._complete or self._error is not None:
            self._wake()
            return
        if self._head is not None and self._framing.kind == "close":
            self._finish(reusable=False)
        elif exc is not None:
            self._fail(httpx2.ReadError(f"{type(exc).__name__}: {exc}"))
        elif self._head is None:
            self._fail(httpx2.RemoteProtocolError("Server disconnected without sending a response"))
        else:
            self._fail(
                httpx2.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            )
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the exchange

    def reset(self, method: str) -> None:
        """Ready for a new request on this connection."""
        self._method = method
        self._head = None
        self._buffer.clear()
        self._chunks.clear()
        self._buffered = 0
        self._complete = False
        self._error = None
        self._chunk_state = "size"

    async def _wait(self, limit_s: float | None, what: str) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None
        if limit_s is not None:
            timer = loop.call_later(limit_s, _expire, waiter, what)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def send(self, head: bytes, body: bytes, timeouts: Timeouts) -> Head:
        """Write the request, then wait for the answer's head."""
        transport = self.transport
        if transport is None or not self.writable:
            raise httpx2.ReadError("the connection closed before the request was written")
        transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            transport.write(body)
        if self._writable is not None and not self._writable.done():
            await _written_within(self._writable, timeouts.write)
        while self._head is None:
            if self._error is not None:
                raise self._error
            await self._wait(timeouts.read, "read")
        return self._head

    async def next_chunk(self, read_s: float | None) -> bytes:
        """The next piece of the body, b"" at its end."""
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._buffered -= len(data)
                if self._reading_paused and self._buffered < HIGH_WATER // 2 and self.transport:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return data
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            await self._wait(read_s, "read")

    @property
    def writable(self) -> bool:
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    @property
    def declared_length(self) -> int:
        """The answer's `content-length`, or -1 when its length is not declared."""
        return self._framing.length if self._framing.kind == "length" else -1

    @property
    def reusable(self) -> bool:
        return (
            self._complete
            and self._error is None
            and self._head is not None
            and self._head.reusable
            and self.writable
        )

    def close(self) -> None:
        self.closed = True
        transport = self.transport
        if transport is None:
            return
        if not self.loop.is_closed():
            transport.abort()
            return
        # its loop is gone (a pool kept across `asyncio.run` calls): what abort() would
        # have scheduled there, done now (asyncio's transports; uvloop closes its own)
        finish = getattr(transport, "_call_connection_lost", None)
        if finish is not None:
            with contextlib.suppress(Exception):
                finish(None)


def _expire(waiter: asyncio.Future[None], what: str) -> None:
    if not waiter.done():
        error = httpx2.ReadTimeout if what == "read" else httpx2.WriteTimeout
        waiter.set_exception(error(f"timed out waiting to {what}"))


async def _written_within(drained: asyncio.Future[None], limit_s: float | None) -> None:
    """Wait for the socket's buffer to drain, as httpx2's write timeout does."""
    if limit_s is None:
        await drained
        return
    try:
        async with asyncio.timeout(limit_s):
            await asyncio.shield(drained)
    except TimeoutError:
        raise httpx2.WriteTimeout("timed out waiting to write") from None


class Response:
    """An answer whose body is read as it arrives; `aclose()` returns the connection to
    the pool when the body was read to its end, and closes it otherwise."""

    __slots__ = (
        "_connection",
        "_done",
        "_limit",
        "_pool",
        "_read_s",
        "headers",
        "status_code",
    )

    def __init__(
        self, pool: Pool, connection: Connection, head: Head, read_s: float | None
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self.status_code = head.status
        self.headers = head.headers
        self._read_s = read_s
        self._done = False
        self._limit = pool.max_response_bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lowercase)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it came (content-encoding left alone), piece by piece as it arrives."""
        connection = self._connection
        if connection is None:
            return
        seen = 0
        limit = self._limit
        while True:
            data = await connection.next_chunk(self._read_s)
            if not data:
                break
            seen += len(data)
            if limit is not None and seen > limit:
                raise ResponseTooLarge(limit)
            yield data
        self._done = True

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, decoded, piece by piece as it arrives."""
        decoder = _decoder(self.headers)
        async for data in self.aiter_raw():
            if decoder is None:
                yield data
                continue
            try:
                decoded = decoder.decompress(data)
            except zlib.error as exc:
                raise httpx2.DecodingError(f"the answer's body does not decode: {exc}") from None
            if decoded:
                yield decoded
        if decoder is not None:
            try:
                tail = decoder.flush()
            except zlib.error as exc:
                raise httpx2.DecodingError(f"the answer's body does not decode: {exc}") from None
            if tail:
                yield tail

    async def aread_raw(self) -> bytes:
        """The whole body as it came (content-encoding left alone)."""
        return b"".join([part async for part in self.aiter_raw()])

    async def aread(self) -> bytes:
        """The whole body."""
        parts = [part async for part in self.aiter_bytes()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._done and connection.reusable:
            self._pool.release(connection)
        else:
            self._pool.discard(connection)


def _decoder(headers: list[tuple[str, str]]) -> zlib._Decompress | None:
    for name, value in headers:
        if name == "content-encoding":
            coding = value.strip().lower()
            if coding == "gzip":
                return zlib.decompressobj(16 + zlib.MAX_WBITS)
            if coding == "deflate":
                return zlib.decompressobj()
            if coding not in ("", "identity"):
                raise httpx2.DecodingError(f"content-encoding {coding!r} was not asked for")
    return None


class Pool:
    """Keep-alive connections to one origin, at most `max_connections` at once."""

    def __init__(
        self,
        url: str,
        timeouts: Timeouts,
        *,
        max_connections: int = 200,
        max_idle: int = 50,
        max_response_bytes: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.origin = Origin.of(url)
        self._clock = clock
        self.timeouts = timeouts
        self.max_connections = max_connections
        self.max_idle = max_idle
        self.max_response_bytes = max_response_bytes
        self._ssl = ssl_context
        self._idle: list[Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.origin.scheme != "https":
            return None
        if self._ssl is None:
            self._ssl = httpx2.create_ssl_context()
        return self._ssl

    def prepare(self, method: str, target: str, headers: Mapping[str, str]) -> Prepared:
        """The head shared by every request of a kind, encoded once for `send`."""
        return self.prepared(method, target.encode("ascii"), header_lines(headers))

    def prepared(self, method: str, target: bytes, lines: bytes) -> Prepared:
        """The request line and `host`, then `lines` (encoded `name: value\\r\\n` lines)."""
        start = b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (
            method.encode("ascii"),
            target,
            self.origin.authority,
        )
        return Prepared(method, start + lines)

    async def open(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Timeouts | None = None,
    ) -> Response:
        """Send a request and return its answer once the head arrived; read the body from
        the `Response` and `aclose()` it. A header that could split the head raises
        `httpx2.LocalProtocolError` before anything is sent."""
        return await self.send(self.prepare(method, target, headers), body, timeouts=timeouts)

    async def send(
        self,
        prepared: Prepared,
        body: bytes,
        *,
        extra: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
    ) -> Response:
        """`open` with a head from `prepare`, and `extra` headers for this request only."""
        timeouts = timeouts or self.timeouts
        more = header_lines(extra) if extra else b""
        head = b"%s%scontent-length: %d\r\n\r\n" % (prepared.head, more, len(body))
        mark_sent()  # handed to the transport, as httpx2's request hook says it
        connection = await self._acquire(timeouts)
        for _ in range(3):
            if connection.writable:
                break
            self.discard(connection)  # closed by the server since it went idle
            connection = await self._acquire(timeouts)
        connection.reset(prepared.method)
        try:
            answer_head = await connection.send(head, body, timeouts)
            limit = self.max_response_bytes
            if limit is not None and connection.declared_length > limit:
                raise ResponseTooLarge(limit)  # refused before its body is read
        except BaseException:
            self.discard(connection)
            raise
        return Response(self, connection, answer_head, timeouts.read)

    async def _acquire(self, timeouts: Timeouts) -> Connection:
        if self._closed:
            raise httpx2.PoolTimeout("the pool is closed")
        now = self._clock()
        loop = asyncio.get_running_loop()
        while self._idle:
            connection = self._idle.pop()
            if (
                not connection.reusable
                or now - connection.idle_since > KEEPALIVE_S
                or connection.loop is not loop
            ):
                self.discard(connection)
                continue
            return connection
        while self._open >= self.max_connections:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                if timeouts.pool is None:
                    await waiter
                else:
                    async with asyncio.timeout(timeouts.pool):
                        await waiter
            except BaseException as exc:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled or timed out: pass the turn on
                if isinstance(exc, TimeoutError):
                    raise httpx2.PoolTimeout("no connection free within the pool timeout") from None
                raise
            while self._idle:
                connection = self._idle.pop()
                if connection.reusable:
                    return connection
                self.discard(connection)
        self._open += 1
        try:
            return await self._connect(timeouts.connect)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    async def _connect(self, connect_s: float | None) -> Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        context = self._ssl_context()
        try:
            async with asyncio.timeout(connect_s):
                _, protocol = await loop.create_connection(
                    lambda: Connection(self),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                )
        except TimeoutError:
            where = f"{origin.host}:{origin.port}"
            raise httpx2.ConnectTimeout(f"connecting to {where} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx2.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return protocol

    def release(self, connection: Connection) -> None:
        """A connection whose answer was read to the end, back for the next request."""
        if self._closed or len(self._idle) >= self.max_idle or not connection.reusable:
            self.discard(connection)
            return
        connection.idle_since = self._clock()
        self._idle.append(connection)
        self._wake_one()

    def discard(self, connection: Connection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)
        connection.close()
        if not connection.returned:
            connection.returned = True
            self._open -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def in_use(self) -> int:
        return self._open - len(self._idle)

    async def aclose(self) -> None:
        self._closed = True
        for connection in list(self._idle):
            self.discard(connection)


class PoolTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport on a `Pool`, so the SDK client of a provider and its native path
    share one set of connections. A request for another origin (the SDKs make none) goes
    through httpx2's own transport."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._other: httpx2.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        origin = self.pool.origin
        port = url.port or (443 if url.scheme == "https" else 80)
        if (url.scheme, url.host, port) != (origin.scheme, origin.host, origin.port):
            if self._other is None:
                self._other = httpx2.AsyncHTTPTransport()
            return await self._other.handle_async_request(request)
        body = await request.aread()
        limits = request.extensions.get("timeout")
        timeouts = self.pool.timeouts
        if isinstance(limits, Mapping):
            timeouts = Timeouts(
                limits.get("connect"), limits.get("read"), limits.get("write"), limits.get("pool")
            )
        lines = b"".join(
            name + b": " + value + b"\r\n"  # httpx2 refused any that could split the head
            for name, value in request.headers.raw
            if name.lower().decode("latin-1") not in _OWN_HEADERS
        )
        prepared = self.pool.prepared(request.method, url.raw_path, lines)
        answer = await self.pool.send(prepared, body, timeouts=timeouts)
        return httpx2.Response(
            answer.status_code,
            headers=answer.headers,
            stream=_RawStream(answer),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._other is not None:
            await self._other.aclose()
        await self.pool.aclose()


class _RawStream(httpx2.AsyncByteStream):
    """A pooled answer's body for httpx2, which decodes it itself."""

    def __init__(self, answer: Response) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self._answer.aiter_raw():
            yield data

    async def aclose(self) -> None:
        await self._answer.aclose()
