"""The adapters read an answer's usual text block without a pydantic dump: the same blocks.

Each answer is parsed the way the SDK parses a response (`construct`, which keeps what a
server sent even when it does not fit the types), then normalised both ways.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from anthropic.types import Message as AnthropicMessage

from resilience.providers.anthropic import answer_block, normalise_block

BLOCKS: list[dict[str, Any]] = [
    {"type": "text", "text": "hello"},
    {"type": "text", "text": ""},
    {"type": "text", "text": "cited", "citations": [{"type": "char_location", "cited_text": "x"}]},
    {"type": "text"},  # a server that left the text out
    {"type": "text", "text": None},
    {"type": "text", "text": 7},  # a server that sent a number: kept as sent, both ways
    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
    {"type": "thinking", "thinking": "hmm", "signature": "s"},
    {"type": "something_new", "payload": {"x": 1}},
]


@pytest.mark.parametrize("sent", BLOCKS, ids=[str(b) for b in BLOCKS])
def test_a_block_normalises_as_its_dump_does(sent: dict[str, Any]) -> None:
    message = AnthropicMessage.construct(
        id="m",
        type="message",
        role="assistant",
        model="claude",
        content=[sent],
        stop_reason="end_turn",
        usage={"input_tokens": 1, "output_tokens": 1},
    )
    (block,) = message.content
    with warnings.catch_warnings():  # pydantic warns while dumping a number as text
        warnings.simplefilter("ignore")
        dumped = normalise_block(block.model_dump(exclude_none=True))
    assert answer_block(block) == dumped
