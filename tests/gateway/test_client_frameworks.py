"""Frameworks as users set them up, pointed at the gateway over a real socket: LangChain's
`ChatOpenAI.with_structured_output` and `OpenAIEmbeddings` with their defaults, and
`instructor` on an `AsyncOpenAI`. Each answer is held to the same client's answer when
pointed at the chaos upstream directly.

LangChain is given `http_async_client`, the same client class the openai SDK would make,
only so the test can close it: what it sends (token arrays, base64, `response_format`) is
its default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import instructor
import pytest
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, SecretStr

from tests.gateway.configured import KEYS
from tests.gateway.real_clients import ENVIRON, Served, seed_tiktoken_cache, served


class Invoice(BaseModel):
    number: str
    total_cents: int
    paid: bool
    lines: list[str]


QUESTION = "Extract the invoice: #A-17, 12.50 EUR, paid, one line: coffee"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as running:
        yield running


async def structured(running: Served, base_url: str, key: str, model: str) -> dict[str, Any]:
    llm = ChatOpenAI(
        base_url=base_url,
        api_key=SecretStr(key),
        model=model,
        max_retries=0,
        http_async_client=running.http_client(),
    )
    answer: dict[str, Any] = await llm.with_structured_output(Invoice, include_raw=True).ainvoke(
        QUESTION
    )
    return answer


async def test_langchain_with_structured_output_returns_the_model(gateway: Served) -> None:
    answer = await structured(gateway, f"{gateway.gateway}/v1", KEYS["acme"], "solo")
    direct = await structured(
        gateway, f"{gateway.upstream}/direct/v1", ENVIRON["UPSTREAM_KEY"], "gpt-4.1"
    )

    assert answer["parsing_error"] is None
    assert isinstance(answer["parsed"], Invoice)
    assert answer["parsed"] == direct["parsed"]
    assert gateway.body_sent("primary") == gateway.body_sent("direct")
    raw: AIMessage = answer["raw"]
    direct_raw: AIMessage = direct["raw"]
    kept = ("system_fingerprint", "token_usage", "model_name", "finish_reason")
    assert {k: raw.response_metadata[k] for k in kept} == {
        k: direct_raw.response_metadata[k] for k in kept
    }
    assert raw.response_metadata["system_fingerprint"]


async def test_langchain_openai_embeddings_with_its_defaults_match_a_direct_call(
    gateway: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(seed_tiktoken_cache(tmp_path / "tiktoken")))
    texts = ["hello world", "a second, longer text to embed"]
    embeddings = OpenAIEmbeddings(
        base_url=f"{gateway.gateway}/v1",
        api_key=SecretStr(KEYS["acme"]),
        model="embed",
        max_retries=0,
        http_async_client=gateway.http_client(),
    )
    vectors = await embeddings.aembed_documents(texts)

    sent = gateway.body_sent("primary")
    # LangChain's defaults: tiktoken token arrays, and the SDK's base64
    assert sent["encoding_format"] == "base64"
    assert all(isinstance(t, int) for tokens in sent["input"] for t in tokens)
    direct = await gateway.direct_openai().embeddings.create(
        model="text-embedding-3-small", input=sent["input"], encoding_format="float"
    )
    assert vectors == [e.embedding for e in direct.data]


async def extracted(served_by: Served, *, direct: bool) -> tuple[Invoice, ChatCompletion]:
    sdk = served_by.direct_openai() if direct else served_by.openai()
    client = instructor.from_openai(sdk)
    invoice, completion = await client.chat.completions.create_with_completion(
        model="gpt-4.1" if direct else "solo",
        response_model=Invoice,
        messages=[{"role": "user", "content": QUESTION}],
        max_retries=0,
    )
    assert isinstance(completion, ChatCompletion)
    return invoice, completion


async def test_instructor_on_async_openai_returns_the_response_model(gateway: Served) -> None:
    invoice, completion = await extracted(gateway, direct=False)
    direct_invoice, direct_completion = await extracted(gateway, direct=True)

    assert isinstance(invoice, Invoice)
    assert invoice.model_dump() == direct_invoice.model_dump()  # each holds its own raw answer
    assert gateway.body_sent("primary") == gateway.body_sent("direct")
    assert gateway.body_sent("primary")["tool_choice"]["function"]["name"] == "Invoice"
    volatile = {"id", "created"}
    assert completion.model_dump(exclude=volatile) == direct_completion.model_dump(exclude=volatile)
    assert completion.system_fingerprint is not None
