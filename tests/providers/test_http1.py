"""The lean HTTP/1.1 client (`resilience.providers.http1`) against a server scripted byte by byte.

It replaces httpx2 on the gateway's native path, so it must frame, reuse and fail as httpx2
would, raising httpx2's own exception types so `classify` reads its failures the same way.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import socketserver
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import openai
import pytest

from resilience.chaos import ChaosUpstream
from resilience.chaos.script import Fault
from resilience.classify import classify
from resilience.errors import ErrorKind, ResponseTooLarge
from resilience.models import ChatRequest, Message
from resilience.providers import build_provider
from resilience.providers.http1 import Pool, Timeouts, usable_for
from resilience.providers.openai import OpenAIProvider
from resilience.providers.sending import dispatch, watch
from resilience.providers.settings import ProviderSettings
from tests.support.chaos import ANSWER, MESSAGES
from tests.support.clock import FakeClock
from tests.support.raw_http import (
    PATIENT,
    RawConnection,
    RawServer,
    answer_each,
    let_client_read,
    ok,
    raw_server,
)

CHUNKED = (
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n"
    b"1\r\n \r\n"
    b"A; ext\r\nworld, too\r\n"
    b"0\r\nx-trailer: t\r\nx-other: u\r\n\r\n"
)


pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
async def pools() -> AsyncIterator[list[Pool]]:
    """Pools a test makes, closed after it."""
    made: list[Pool] = []
    yield made
    for pool in made:
        await pool.aclose()


def pool_for(
    made: list[Pool],
    server: RawServer | str,
    timeouts: Timeouts = PATIENT,
    **options: int,
) -> Pool:
    url = server if isinstance(server, str) else server.url
    pool = Pool(url, timeouts, **options)  # type: ignore[arg-type]
    made.append(pool)
    return pool


async def fetch(pool: Pool, body: bytes = b"{}") -> bytes:
    """One request, answered whole and closed."""
    response = await pool.open("POST", "/v1/chat", {}, body)
    try:
        return await response.aread()
    finally:
        await response.aclose()


# -- framing ---------------------------------------------------------------------------------


async def test_a_content_length_answer_is_read_whole_and_the_request_goes_out_exactly(
    pools: list[Pool],
) -> None:
    async with raw_server(answer_each(ok(b"hello", b"x-answer: yes"))) as server:
        pool = pool_for(pools, server)
        response = await pool.open("POST", "/v1/chat?q=1", {"x-api-key": "k1"}, b'{"a":1}')
        assert (response.status_code, response.header("x-answer")) == (200, "yes")
        assert await response.aread() == b"hello"
        await response.aclose()
    [request] = server.requests
    assert request.line == b"POST /v1/chat?q=1 HTTP/1.1"
    assert request.header(b"host") == f"127.0.0.1:{server.port}".encode()
    assert request.header(b"x-api-key") == b"k1"
    assert request.header(b"content-length") == b"7"
    assert request.body == b'{"a":1}'


async def test_a_chunked_answer_split_at_every_byte_reads_the_same(pools: list[Pool]) -> None:
    """Every split of the answer in two writes, each on the same kept-alive connection: a
    parser that lost state at a boundary, or left bytes behind, shows up here."""
    splits = iter(range(1, len(CHUNKED)))

    async def handle(connection: RawConnection) -> None:
        while await connection.read_request() is not None:
            at = next(splits)
            await connection.write(CHUNKED[:at], CHUNKED[at:])

    async with raw_server(handle) as server:
        pool = pool_for(pools, server)
        for at in range(1, len(CHUNKED)):
            assert await fetch(pool) == b"hello world, too", f"split at {at}"
        assert pool.idle == 1
    assert server.connections == 1


async def test_a_chunked_answer_in_one_byte_writes_reads_the_same(pools: list[Pool]) -> None:
    pieces = [CHUNKED[i : i + 1] for i in range(len(CHUNKED))]

    async def handle(connection: RawConnection) -> None:
        while await connection.read_request() is not None:
            await connection.write(*pieces)

    async with raw_server(handle) as server:
        pool = pool_for(pools, server)
        assert await fetch(pool) == b"hello world, too"
        assert await fetch(pool) == b"hello world, too"
    assert server.connections == 1


async def test_an_answer_framed_by_close_is_read_to_eof_and_not_reused(pools: list[Pool]) -> None:
    async def handle(connection: RawConnection) -> None:
        if await connection.read_request() is not None:
            await connection.write(b"HTTP/1.1 200 OK\r\n\r\npart one, ", b"part two")
            connection.close()

    async with raw_server(handle) as server:
        pool = pool_for(pools, server)
        assert await fetch(pool) == b"part one, part two"
        assert (pool.idle, pool.in_use) == (0, 0)
        assert await fetch(pool) == b"part one, part two"
    assert server.connections == 2


# -- keep-alive ------------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection(pools: list[Pool]) -> None:
    async with raw_server(answer_each(ok(b"one"), ok(b"two"))) as server:
        pool = pool_for(pools, server)
        assert await fetch(pool) == b"one"
        assert await fetch(pool) == b"two"
        assert (pool.idle, pool.in_use) == (1, 0)
    assert server.connections == 1
    assert [r.connection for r in server.requests] == [0, 0]


async def test_a_connection_idle_past_four_seconds_is_not_reused(pools: list[Pool]) -> None:
    """uvicorn (vLLM and most Python servers) and Node.js close an idle connection after
    5 s: one reused at that moment fails a request the server never read. The pool drops
    it a second earlier, its clock starting when this side had read the answer."""
    clock = FakeClock()
    async with raw_server(answer_each(ok(b"one"))) as server:
        pool = Pool(server.url, PATIENT, clock=clock)
        pools.append(pool)
        await fetch(pool)
        clock.advance(3.9)
        await fetch(pool)
        assert server.connections == 1  # reused
        clock.advance(4.1)
        await fetch(pool)
        assert (server.connections, pool.idle, pool.in_use) == (2, 1, 0)
    assert [r.connection for r in server.requests] == [0, 0, 1]


@pytest.mark.parametrize(
    "answer",
    [
        ok(b"one", b"connection: close"),
        ok(b"one", b"Connection: keep-alive, Close"),
        b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\none",
    ],
    ids=["connection-close", "close-among-tokens", "http-1.0"],
)
async def test_an_answer_that_ends_keep_alive_makes_the_next_request_connect_anew(
    pools: list[Pool], answer: bytes
) -> None:
    """The server keeps the socket open here: the client alone must decide not to reuse."""
    async with raw_server(answer_each(answer)) as server:
        pool = pool_for(pools, server)
        assert await fetch(pool) == b"one"
        assert (pool.idle, pool.in_use) == (0, 0)
        assert await fetch(pool) == b"one"
    assert server.connections == 2


async def test_http_1_0_with_keep_alive_is_reused(pools: list[Pool]) -> None:
    answer = b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok"
    async with raw_server(answer_each(answer)) as server:
        pool = pool_for(pools, server)
        assert await fetch(pool) == b"ok"
        assert await fetch(pool) == b"ok"
    assert server.connections == 1


async def test_an_answer_not_read_to_the_end_discards_its_connection(pools: list[Pool]) -> None:
    body = b"x" * 100

    async def handle(connection: RawConnection) -> None:
        while await connection.read_request() is not None:
            await connection.write(ok(body)[:-50], body[-50:])

    async with raw_server(handle) as server:
        pool = pool_for(pools, server)
        response = await pool.open("POST", "/v1/chat", {}, b"")
        first = await anext(response.aiter_bytes())
        assert 0 < len(first) < len(body)
        assert (pool.in_use, pool.idle) == (1, 0)
        await response.aclose()
        assert (pool.in_use, pool.idle) == (0, 0)
        assert await fetch(pool) == body
        assert (pool.in_use, pool.idle) == (0, 1)
    assert server.connections == 2


# -- failures, as httpx2 raises them ---------------------------------------------------------


async def test_a_server_closing_before_answering_is_a_remote_protocol_error(
    pools: list[Pool],
) -> None:
    async def handle(connection: RawConnection) -> None:
        await connection.read_request()
        connection.close()

    async with raw_server(handle) as server:
        pool = pool_for(pools, server)
        with pytest.raises(httpx2.RemoteProtocolError) as caught:
            await pool.open("POST", "/v1/chat", {}, b"{}")
        assert (pool.in_use, pool.idle) == (0, 0)
    assert classify(caught.value).kind is ErrorKind.NETWORK


@pytest.mark.parametrize(
    "cut",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nwo",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n",
    ],
    ids=["content-length-short", "chunk-cut", "between-chunks", "in-trailers"],
)
async def test_a_server_closing_mid_body_is_a_remote_protocol_error(
    pools: list[Pool], cut: bytes
) -> None:
    async def handle(connection: RawConnection) -> None:
        await connection.read_request()
        await connection.write(cut)
        connection.close()

    async with raw_server(handle) as server:
        pool = pool_for(pools, server)
        response = await pool.open("POST", "/v1/chat", {}, b"{}")
        with pytest.raises(httpx2.RemoteProtocolError) as caught:
            await response.aread()
        await response.aclose()
        assert (pool.in_use, pool.idle) == (0, 0)
    assert classify(caught.value).kind is ErrorKind.NETWORK


async def test_a_server_that_never_answers_is_a_read_timeout(pools: list[Pool]) -> None:
    async def handle(connection: RawConnection) -> None:
        await connection.read_request()
        await connection.wait_closed_by_client()

    async with raw_server(handle) as server:
        pool = pool_for(pools, server, PATIENT._replace(read=0.05))
        with pytest.raises(httpx2.ReadTimeout) as caught:
            await pool.open("POST", "/v1/chat", {}, b"{}")
        assert (pool.in_use, pool.idle) == (0, 0)
    assert classify(caught.value).kind is ErrorKind.TIMEOUT


async def test_a_body_that_stalls_is_a_read_timeout(pools: list[Pool]) -> None:
    async def handle(connection: RawConnection) -> None:
        await connection.read_request()
        await connection.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        await connection.wait_closed_by_client()

    async with raw_server(handle) as server:
        pool = pool_for(pools, server, PATIENT._replace(read=0.05))
        response = await pool.open("POST", "/v1/chat", {}, b"{}")
        with pytest.raises(httpx2.ReadTimeout):
            await response.aread()
        await response.aclose()
        assert (pool.in_use, pool.idle) == (0, 0)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


async def test_a_refused_connection_is_a_connect_error(pools: list[Pool], closed_port: int) -> None:
    pool = pool_for(pools, f"http://127.0.0.1:{closed_port}")
    with pytest.raises(httpx2.ConnectError) as caught:
        await pool.open("POST", "/v1/chat", {}, b"{}")
    assert (pool.in_use, pool.idle) == (0, 0)
    assert classify(caught.value).kind is ErrorKind.NETWORK


# -- the pool's limit ------------------------------------------------------------------------


async def test_a_request_waits_for_the_only_connection_then_reuses_it(pools: list[Pool]) -> None:
    async with raw_server(answer_each(ok(b"one"), ok(b"two"))) as server:
        pool = pool_for(pools, server, max_connections=1)
        first = await pool.open("POST", "/v1/chat", {}, b"{}")
        second = asyncio.create_task(fetch(pool))
        for _ in range(5):
            await let_client_read()
        assert not second.done()
        assert len(server.requests) == 1  # the second did not go out on a connection of its own
        assert await first.aread() == b"one"
        await first.aclose()
        assert await second == b"two"
    assert server.connections == 1


async def test_a_pool_held_past_its_timeout_is_a_pool_timeout(pools: list[Pool]) -> None:
    async with raw_server(answer_each(ok(b"one"))) as server:
        pool = pool_for(pools, server, PATIENT._replace(pool=0.05), max_connections=1)
        held = await pool.open("POST", "/v1/chat", {}, b"{}")
        with pytest.raises(httpx2.PoolTimeout) as caught:
            await pool.open("POST", "/v1/chat", {}, b"{}")
        assert pool.in_use == 1
        await held.aclose()
        assert await fetch(pool) == b"one"  # the pool still works once the holder lets go
    assert classify(caught.value).kind is ErrorKind.TIMEOUT


async def test_a_waiter_cancelled_after_its_wake_up_passes_the_slot_on(
    pools: list[Pool],
) -> None:
    async with raw_server(answer_each(ok(b"one", b"connection: close"))) as server:
        pool = pool_for(pools, server, PATIENT._replace(pool=0.2), max_connections=1)
        held = await pool.open("POST", "/v1/chat", {}, b"{}")
        cancelled = asyncio.create_task(fetch(pool))
        waiting = asyncio.create_task(fetch(pool))
        await let_client_read()  # both are queued for the one connection
        await held.aread()
        await held.aclose()  # not reusable: the slot is freed, `cancelled` is woken...
        cancelled.cancel()  # ...and cancelled before it could run (a caller gone away)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert await waiting == b"one"  # the turn `cancelled` was given went on to it
        assert pool.in_use == 0


# -- limits, decoding, interim answers -------------------------------------------------------


async def test_a_chunked_body_growing_over_the_limit_fails_while_reading(
    pools: list[Pool],
) -> None:
    chunk = b"100\r\n" + b"y" * 256 + b"\r\n"
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"

    async def handle(connection: RawConnection) -> None:
        await connection.read_request()
        await connection.write(head, *[chunk] * 5, b"0\r\n\r\n")
        await connection.wait_closed_by_client()

    async with raw_server(handle) as server:
        pool = pool_for(pools, server, max_response_bytes=1024)
        response = await pool.open("POST", "/v1/chat", {}, b"{}")
        seen = 0
        with pytest.raises(ResponseTooLarge):
            async for piece in response.aiter_bytes():
                seen += len(piece)
        await response.aclose()
        assert seen <= 1024
        assert (pool.in_use, pool.idle) == (0, 0)


async def test_a_declared_content_length_over_the_limit_is_refused_before_its_body(
    pools: list[Pool],
) -> None:
    async def handle(connection: RawConnection) -> None:
        await connection.read_request()
        await connection.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nsome")
        await connection.wait_closed_by_client()

    async with raw_server(handle) as server:
        pool = pool_for(pools, server, PATIENT._replace(read=0.1), max_response_bytes=1024)
        with pytest.raises(ResponseTooLarge):
            response = await pool.open("POST", "/v1/chat", {}, b"{}")
            try:
                await response.aread()
            finally:
                await response.aclose()


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_gzip_answer_sent_unasked_is_decoded(pools: list[Pool], framing: str) -> None:
    plain = b"hello gzip " * 50
    packed = gzip.compress(plain)
    if framing == "length":
        answer = ok(packed, b"content-encoding: gzip")
    else:
        half = len(packed) // 2
        answer = (
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (half, packed[:half], len(packed) - half, packed[half:])
        )
    async with raw_server(answer_each(answer)) as server:
        pool = pool_for(pools, server)
        assert await fetch(pool) == plain
        assert await fetch(pool) == plain  # and the connection was left clean for reuse
    assert server.connections == 1


async def test_a_corrupt_gzip_body_is_a_decoding_error(pools: list[Pool]) -> None:
    async with raw_server(answer_each(ok(b"not gzip at all", b"content-encoding: gzip"))) as server:
        pool = pool_for(pools, server)
        with pytest.raises(httpx2.DecodingError):
            await fetch(pool)


async def test_an_answer_with_an_unknown_encoding_still_gives_its_connection_back(
    pools: list[Pool],
) -> None:
    """The refusal comes while reading, so closing the answer frees its pool slot."""
    async with raw_server(answer_each(ok(b"raw", b"content-encoding: br"))) as server:
        pool = pool_for(pools, server, max_connections=1)
        with pytest.raises(httpx2.DecodingError):  # httpx2 would pass the bytes on undecoded
            await fetch(pool)
        assert (pool.in_use, pool.idle) == (0, 0)
        response = await pool.open("POST", "/v1/chat", {}, b"{}")  # the one slot is free
        await response.aclose()


async def test_an_early_hints_answer_is_skipped_for_the_final_one(pools: list[Pool]) -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"

    async def handle(connection: RawConnection) -> None:
        while await connection.read_request() is not None:
            await connection.write(hints, hints + ok(b"final")[:20], ok(b"final")[20:])

    async with raw_server(handle) as server:
        pool = pool_for(pools, server)
        response = await pool.open("POST", "/v1/chat", {}, b"{}")
        assert response.status_code == 200
        assert await response.aread() == b"final"
        await response.aclose()
        assert await fetch(pool) == b"final"
    assert server.connections == 1


async def test_a_non_ascii_digit_content_length_is_a_remote_protocol_error(
    pools: list[Pool],
) -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: \xb2\r\n\r\nok"
    async with raw_server(answer_each(answer)) as server:
        pool = pool_for(pools, server)
        with pytest.raises(httpx2.RemoteProtocolError):
            await fetch(pool)


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (302, b"location: /elsewhere", b"moved"),
        (404, b"content-type: application/json", b'{"error":"no"}'),
        (503, b"retry-after: 7", b"busy"),
    ],
)
async def test_an_error_or_redirect_answer_is_returned_as_it_is(
    pools: list[Pool], status: int, headers: bytes, body: bytes
) -> None:
    answer = b"HTTP/1.1 %d Whatever\r\n%s\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        headers,
        len(body),
        body,
    )
    name, _, value = headers.decode().partition(": ")
    async with raw_server(answer_each(answer)) as server:
        pool = pool_for(pools, server)
        response = await pool.open("POST", "/v1/chat", {}, b"{}")
        assert (response.status_code, response.header(name)) == (status, value)
        assert await response.aread() == body
        await response.aclose()
    assert len(server.requests) == 1  # a redirect is not followed


# -- what goes out ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["headers", "extra"])
async def test_a_header_that_splits_lines_is_refused_before_anything_is_sent(
    pools: list[Pool], where: str
) -> None:
    bad = {"x-bad": "a\r\nx-injected: 1"}
    async with raw_server(answer_each(ok())) as server:
        pool = pool_for(pools, server)
        with dispatch() as sending:
            watch()
            with pytest.raises(httpx2.LocalProtocolError):
                if where == "headers":
                    await pool.open("POST", "/v1/chat", bad, b"{}")
                else:
                    await pool.send(pool.prepare("POST", "/v1/chat", {}), b"{}", extra=bad)
        assert not sending.sent
        assert (pool.in_use, pool.idle) == (0, 0)
        with dispatch() as normal:
            watch()
            assert await fetch(pool) == b"ok"
        assert normal.sent
    assert (server.connections, len(server.requests)) == (1, 1)
    assert server.requests[0].header(b"x-injected") is None


@pytest.mark.parametrize(
    ("url", "usable"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("https://api.openai.com/v1", True),
        ("https://user:secret@api.example.com/v1", False),
        ("https://key@api.example.com/v1", False),
        ("ftp://api.example.com/v1", False),
        ("unix:///run/upstream.sock", False),
        ("http:///no-host", False),
    ],
)
def test_usable_for_takes_only_plain_http_urls(url: str, usable: bool) -> None:
    assert usable_for(url) is usable


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_usable_for_refuses_when_a_proxy_is_configured(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://proxy.internal:3128")
    assert not usable_for("https://api.openai.com/v1")


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrent_requests_each_get_their_own_answer(pools: list[Pool]) -> None:
    """The server echoes each body, in pieces, so a crossed or mis-framed answer shows."""

    async def echo(connection: RawConnection) -> None:
        while (request := await connection.read_request()) is not None:
            answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
            await connection.write(answer % (len(request.body), request.body))

    async def one(pool: Pool, number: int) -> tuple[int, bytes]:
        body = json.dumps({"id": number}).encode()
        return number, await fetch(pool, body)

    async with raw_server(echo) as server:
        pool = pool_for(pools, server, max_connections=20)
        answers = await asyncio.gather(*(one(pool, n) for n in range(200)))
        assert (pool.in_use, pool.idle) == (0, server.connections)
    assert all(json.loads(body) == {"id": number} for number, body in answers)
    assert server.connections <= 20
    assert len(server.requests) == 200


# -- through the provider adapter ------------------------------------------------------------


def openai_adapter(base_url: str) -> OpenAIProvider:
    provider = build_provider(
        "p", ProviderSettings(kind="openai", api_key="k", base_url=base_url, timeout_s=5)
    )
    assert isinstance(provider, OpenAIProvider)
    return provider


async def test_the_openai_adapter_sends_native_requests_on_its_lean_pool(
    chaos: ChaosUpstream,
) -> None:
    body = {"model": "m", "messages": MESSAGES}
    async with chaos.serve() as root:
        adapter = openai_adapter(f"{root}/u/v1")
        try:
            assert adapter.pool is not None
            answer = await adapter.send_native("openai.chat", body)
            assert answer.data["choices"][0]["message"]["content"] == ANSWER
            assert adapter.pool.idle == 1  # the answer came back on the lean pool
            chaos.sequence([Fault(status=429), Fault(status=500)])
            with pytest.raises(openai.RateLimitError) as limited:
                await adapter.send_native("openai.chat", body)
            with pytest.raises(openai.InternalServerError):
                await adapter.send_native("openai.chat", body)
            assert (adapter.pool.in_use, chaos.hit_count()) == (0, 3)
        finally:
            await adapter.aclose()
    assert classify(limited.value).kind is ErrorKind.RATE_LIMITED


async def test_the_sdk_path_shares_the_same_lean_pool(chaos: ChaosUpstream) -> None:
    """`PoolTransport`: the SDK's own requests (a stream) ride the pool the native path and
    whole answers use."""
    hi = ChatRequest(messages=(Message("user", "hi"),))
    async with chaos.serve() as root:
        adapter = openai_adapter(f"{root}/u/v1")
        try:
            assert adapter.pool is not None
            chunks = [chunk async for chunk in adapter.stream(hi, model="m")]
            assert chunks and adapter.pool.idle == 1
            await adapter.send_native("openai.chat", {"model": "m", "messages": MESSAGES})
            assert (await adapter.complete(hi, model="m")).text
            assert (adapter.pool.idle, adapter.pool.in_use) == (1, 0)
        finally:
            await adapter.aclose()


@pytest.mark.parametrize(
    ("kind", "api", "path"),
    [("openai", "openai.chat", "/u/v1"), ("anthropic", "anthropic.messages", "/u")],
)
async def test_a_native_stream_read_to_its_end_leaves_its_connection_for_the_next_call(
    chaos: ChaosUpstream, kind: str, api: str, path: str
) -> None:
    """After the end marker the rest of the body (the chunked terminator) is read, so the
    connection goes back to the pool: a provider on the internet is not asked for a new
    TLS handshake by every stream."""
    body = {"model": "m", "max_tokens": 16, "messages": MESSAGES, "stream": True}
    async with chaos.serve() as root:
        settings = ProviderSettings(kind=kind, api_key="k", base_url=root + path, timeout_s=5)  # type: ignore[arg-type]
        adapter = build_provider("p", settings)
        try:
            pool = getattr(adapter, "pool", None)
            assert isinstance(pool, Pool)
            for _ in range(3):
                frames = [f async for f in adapter.stream_native(api, body)]  # type: ignore[attr-defined]
                assert frames and (pool.idle, pool.in_use) == (1, 0)
        finally:
            await adapter.aclose()
    assert chaos.hit_count() == 3


async def test_an_sdk_answer_over_the_size_cap_is_an_invalid_response() -> None:
    """The pool under the SDK client caps the answer itself: a declared length over
    `max_response_bytes` fails the call before its body is read."""
    async with raw_server(answer_each(ok(b"x" * 5000))) as server:
        settings = ProviderSettings(
            kind="openai", api_key="k", base_url=f"{server.url}/v1", max_response_bytes=4096
        )
        adapter = OpenAIProvider("p", settings)
        try:
            assert adapter.pool is not None
            with pytest.raises(Exception) as caught:
                await adapter.complete(ChatRequest(messages=(Message("user", "hi"),)), model="m")
            assert (adapter.pool.in_use, adapter.pool.idle) == (0, 0)
        finally:
            await adapter.aclose()
    assert classify(caught.value).kind is ErrorKind.INVALID_RESPONSE


async def test_a_proxy_in_the_environment_keeps_the_adapter_on_httpx2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    adapter = openai_adapter("https://api.example.com/v1")
    try:
        assert adapter.pool is None
    finally:
        await adapter.aclose()


async def test_a_gzip_encoded_error_answer_raises_the_sdks_status_error() -> None:
    error = gzip.compress(b'{"error":{"message":"boom","type":"server_error"}}')
    answer = b"HTTP/1.1 500 Internal Server Error\r\n" + ok(error, b"content-encoding: gzip")[17:]
    async with raw_server(answer_each(answer)) as server:
        adapter = openai_adapter(f"{server.url}/v1")
        try:
            with pytest.raises(openai.InternalServerError):
                await adapter.send_native("openai.chat", {"model": "m", "messages": MESSAGES})
        finally:
            await adapter.aclose()


class _KeepAliveHandler(socketserver.StreamRequestHandler):
    """Answers every request on a connection with the number of that connection."""

    def handle(self) -> None:
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                byte = self.rfile.read(1)
                if not byte:
                    return
                head += byte
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            self.rfile.read(length)
            body = str(self.server.connections).encode()  # type: ignore[attr-defined]
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


class _CountingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    connections = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)


def test_a_pool_kept_across_event_loops_opens_new_connections_in_each() -> None:
    """`asyncio.run` per call with one long-lived provider: the idle connection left by a
    closed loop (its server still holding it open) is dropped, never written to."""
    with _CountingServer(("127.0.0.1", 0), _KeepAliveHandler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            pool = Pool(f"http://127.0.0.1:{server.server_address[1]}", PATIENT)
            assert asyncio.run(fetch(pool)) == b"1"
            assert pool.idle == 1
            assert asyncio.run(fetch(pool)) == b"2"  # a new connection, in the new loop
            assert asyncio.run(fetch(pool)) == b"3"
            assert pool.in_use == 0
            asyncio.run(pool.aclose())  # closes the last loop's connection, its loop gone
        finally:
            server.shutdown()


@pytest.mark.parametrize(("kind", "path"), [("openai", "/v1"), ("anthropic", "")])
async def test_stream_data_that_is_not_an_object_is_refused_naming_the_provider(
    kind: str, path: str
) -> None:
    """Checked once, where the events are parsed, for both adapters."""
    events = b'data: [1, 2]\n\ndata: {"type": "message_stop"}\n\n'
    answer = ok(events, b"content-type: text/event-stream")
    async with raw_server(answer_each(answer)) as server:
        settings = ProviderSettings(kind=kind, api_key="k", base_url=server.url + path)  # type: ignore[arg-type]
        adapter = build_provider("p", settings)
        try:
            with pytest.raises(
                ValueError, match="provider 'p' streamed data that is not an object"
            ):
                _ = [
                    c
                    async for c in adapter.stream(
                        ChatRequest(messages=(Message("user", "hi"),)), model="m"
                    )
                ]
        finally:
            await adapter.aclose()
