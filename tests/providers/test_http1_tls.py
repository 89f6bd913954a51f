"""The lean HTTP/1.1 client over TLS, as it reaches the providers' real APIs.

Every provider's cloud API is HTTPS, so the pool must verify the server's certificate and
name the way httpx2 would (its default context: certifi, or `SSL_CERT_FILE`), and refuse a
server it cannot verify with httpx2's `ConnectError`. The certificate is made at test time
by the `openssl` command (on the CI machine), for `localhost` only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import openai
import pytest

from resilience.classify import classify
from resilience.errors import ErrorKind
from resilience.models import ChatRequest, Message
from resilience.providers.http1 import Pool
from resilience.providers.openai import OpenAIProvider
from resilience.providers.settings import ProviderSettings
from tests.support.raw_http import PATIENT

ANSWER = (
    b'{"id":"chatcmpl-tls","object":"chat.completion","created":1,"model":"gpt-4.1",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"over tls",'
    b'"refusal":null},"finish_reason":"stop","logprobs":null}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
)


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for `localhost` (not for 127.0.0.1)."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the openssl command is needed to make the test certificate")
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


pytestmark = pytest.mark.usefixtures("no_proxy")


@asynccontextmanager
async def tls_server(certificate: Certificate) -> AsyncIterator[tuple[int, list[bytes]]]:
    """An HTTPS server on 127.0.0.1 answering every request with `ANSWER`; the port, and
    the request heads it received."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, heads
    finally:
        server.close()
        await server.wait_closed()


def trusting(certificate: Certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate.cert))


async def test_a_verified_server_answers_and_its_connection_is_reused(
    certificate: Certificate,
) -> None:
    async with (
        tls_server(certificate) as (port, heads),
        aclosing(
            Pool(f"https://localhost:{port}/v1", PATIENT, ssl_context=trusting(certificate))
        ) as pool,
    ):
        for _ in range(2):
            answer = await pool.open("POST", "/v1/chat/completions", {}, b"{}")
            assert answer.status_code == 200
            assert await answer.aread() == ANSWER
            await answer.aclose()
        assert pool.idle == 1  # one TLS connection carried both
    assert len(heads) == 2
    assert heads[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"host: localhost:{port}\r\n".encode() in heads[0]


async def test_the_default_context_trusts_what_ssl_cert_file_names(
    certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No context given: httpx2's default, which reads `SSL_CERT_FILE` as httpx2 does."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    async with (
        tls_server(certificate) as (port, _),
        aclosing(Pool(f"https://localhost:{port}", PATIENT)) as pool,
    ):
        answer = await pool.open("POST", "/v1/chat/completions", {}, b"{}")
        assert await answer.aread() == ANSWER
        await answer.aclose()


async def test_an_untrusted_certificate_is_a_connect_error(certificate: Certificate) -> None:
    async with (
        tls_server(certificate) as (port, heads),
        aclosing(
            Pool(f"https://localhost:{port}", PATIENT, ssl_context=ssl.create_default_context())
        ) as pool,
    ):
        with pytest.raises(httpx2.ConnectError) as caught:
            await pool.open("POST", "/v1/chat/completions", {}, b"{}")
        assert (pool.in_use, pool.idle) == (0, 0)
    assert heads == []  # nothing was sent to a server the client could not verify
    assert classify(caught.value).kind is ErrorKind.NETWORK


async def test_a_certificate_for_another_name_is_a_connect_error(
    certificate: Certificate,
) -> None:
    """The certificate names `localhost`; reached as 127.0.0.1 it must not be accepted."""
    async with (
        tls_server(certificate) as (port, heads),
        aclosing(
            Pool(f"https://127.0.0.1:{port}", PATIENT, ssl_context=trusting(certificate))
        ) as pool,
    ):
        with pytest.raises(httpx2.ConnectError):
            await pool.open("POST", "/v1/chat/completions", {}, b"{}")
    assert heads == []


async def test_the_openai_adapter_sends_both_paths_over_tls_on_one_pool(
    certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter's own pool (no http_client given) over HTTPS: the native path and the
    SDK's path (through `PoolTransport`) share its one connection."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    async with tls_server(certificate) as (port, heads):
        settings = ProviderSettings(
            kind="openai", api_key="k", base_url=f"https://localhost:{port}/v1"
        )
        provider = OpenAIProvider("primary", settings)
        try:
            assert provider.pool is not None
            body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
            native = await provider.send_native("openai.chat", body)
            assert native.data["choices"][0]["message"]["content"] == "over tls"
            request = ChatRequest(messages=(Message(role="user", content="hi"),))
            normalised = await provider.complete(request, model="gpt-4.1")
            assert normalised.text == "over tls"
            assert provider.pool.idle == 1
        finally:
            await provider.aclose()
    assert len(heads) == 2
    assert all(
        b"authorization: Bearer k\r\n" in head.replace(b"Authorization", b"authorization")
        for head in heads
    )


async def test_an_sdk_call_to_an_untrusted_server_raises_the_sdks_connection_error(
    certificate: Certificate,
) -> None:
    async with tls_server(certificate) as (port, _):
        settings = ProviderSettings(
            kind="openai", api_key="k", base_url=f"https://localhost:{port}/v1"
        )
        provider = OpenAIProvider("primary", settings)
        try:
            request = ChatRequest(messages=(Message(role="user", content="hi"),))
            with pytest.raises(openai.APIConnectionError):
                await provider.complete(request, model="gpt-4.1")
        finally:
            await provider.aclose()
