"""`[server] max_body_bytes`: 32 MiB by default, so requests carrying images fit; the body
is counted across every part it arrives in, refused one byte past the limit."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from resilience.config.load import parse_config
from resilience.config.schema import DEFAULT_MAX_BODY_BYTES, ConfigError, ServerConfig
from tests.gateway.configured import auth, serve

PROVIDERS = {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "location": "local"}}


def test_the_defaults_fit_images_and_tell_sdks_not_to_retry() -> None:
    server = parse_config({"providers": PROVIDERS}).server
    assert server.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 32 * 1024 * 1024
    assert server.sdk_should_retry is False
    assert ServerConfig() == server


def test_the_keys_are_read_and_checked() -> None:
    server = parse_config(
        {"server": {"max_body_bytes": 1_000_000, "sdk_should_retry": True}, "providers": PROVIDERS}
    ).server
    assert (server.max_body_bytes, server.sdk_should_retry) == (1_000_000, True)
    for key, value, problem in [
        ("max_body_bytes", 1000, "server.max_body_bytes: must be an integer >= 1024, got 1000"),
        ("max_body_bytes", 2.5, "server.max_body_bytes: expected an integer"),
        ("sdk_should_retry", "no", "server.sdk_should_retry: expected true or false"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_config({"server": {key: value}, "providers": PROVIDERS})
        assert str(info.value).startswith(problem)


async def test_a_request_with_a_3_mb_image_fits_the_default(tmp_path: Path) -> None:
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + bytes(3_000_000)).decode()
    content = [
        {"type": "text", "text": "what is in this image?"},
        {"type": "image_url", "image_url": {"url": image}},
    ]
    async with serve(tmp_path) as (running, _):
        response = await running.http.post(
            "/v1/chat/completions",
            headers=auth("acme"),
            json={"model": "solo", "messages": [{"role": "user", "content": content}]},
        )
    assert response.status_code == 200, response.text[:500]
    assert response.json()["choices"][0]["message"]["content"].startswith("ok: ")


async def _parts(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _body_of(length: int) -> bytes:
    """A chat body of exactly `length` bytes."""
    shell = json.dumps({"model": "solo", "messages": [{"role": "user", "content": ""}]})
    body = shell.replace('"content": ""', '"content": "' + "x" * (length - len(shell)) + '"')
    assert len(body) == length
    return body.encode()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_the_limit_holds_to_the_byte_over_many_parts(tmp_path: Path, declared: bool) -> None:
    limit = 20_000
    async with serve(tmp_path, server={"max_body_bytes": limit}) as (running, _):
        for length, status in ((limit, 200), (limit + 1, 413)):
            body = _body_of(length)
            headers = {**auth("acme"), "content-type": "application/json"}
            response = await running.http.post(
                "/v1/chat/completions",
                headers=headers,
                content=body if declared else _parts(body, 7),
            )
            assert response.status_code == status, response.text[:300]
    assert status == 413 and response.json()["error"]["code"] == "body_too_large"


async def test_settings_may_override_the_configured_limit(tmp_path: Path) -> None:
    async with serve(tmp_path, server={"max_body_bytes": 1024}, max_body_bytes=50_000) as (
        running,
        _,
    ):
        assert running.gateway.settings.body_limit == 50_000
        response = await running.http.post(
            "/v1/chat/completions", headers=auth("acme"), content=_body_of(10_000)
        )
        assert response.status_code == 200
