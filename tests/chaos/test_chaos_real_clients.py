"""Structured-output clients as users run them, pointed straight at the chaos upstream: what
they send (a forced tool, a json_schema, a schema in the prompt) gets an answer they parse."""

from __future__ import annotations

from collections.abc import AsyncIterator

import instructor
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from resilience.chaos import ChaosUpstream
from tests.support.chaos import ANSWER_WORDS, PROMPT, Upstream


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


EXPECTED = Person(name="ok", age=0, tags=["ok"])


@pytest.fixture
async def root() -> AsyncIterator[str]:
    """A chaos upstream on a loopback socket, for clients that make their own HTTP client."""
    async with ChaosUpstream().serve() as root:
        yield root


@pytest.mark.parametrize(
    "mode",
    [instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA, instructor.Mode.JSON],
    ids=lambda mode: mode.name,
)
async def test_instructor_gets_its_response_model_in_every_openai_mode(
    inproc: Upstream, mode: instructor.Mode
) -> None:
    client = instructor.from_openai(inproc.openai(), mode=mode)
    person = await client.chat.completions.create(
        model="m",
        response_model=Person,
        messages=[{"role": "user", "content": PROMPT}],
        max_retries=0,
    )
    assert person.model_dump() == EXPECTED.model_dump()  # instructor subclasses the model
    assert inproc.chaos.hit_count() == 1  # parsed the first time, no retry


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
async def test_langchain_with_structured_output_parses_the_answer(root: str, method: str) -> None:
    llm = ChatOpenAI(model="m", base_url=f"{root}/u/v1", api_key=SecretStr("k"), max_retries=0)
    person = await llm.with_structured_output(Person, method=method).ainvoke(PROMPT)  # type: ignore[arg-type]
    assert person == EXPECTED


async def test_langchain_streams_the_plain_answer_and_reads_its_usage(root: str) -> None:
    llm = ChatOpenAI(
        model="m", base_url=f"{root}/u/v1", api_key=SecretStr("k"), max_retries=0,
        stream_usage=True,
    )  # fmt: skip
    texts, usage = [], None
    async for chunk in llm.astream(PROMPT):
        texts.append(chunk.content)
        usage = chunk.usage_metadata or usage
    assert [t for t in texts if t] == ANSWER_WORDS
    assert usage is not None and (usage["input_tokens"], usage["output_tokens"]) == (3, 7)
