"""A streamed answer as frames, so faults can cut it at a content chunk whatever the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frames:
    """The SSE events of one streamed answer, split where mid-stream faults apply."""

    head: tuple[bytes, ...]
    """Before any content: `message_start` and friends, or the role chunk."""
    content: tuple[bytes, ...]
    """One event per content chunk; "after N chunks" counts these."""
    tail: tuple[bytes, ...]
    """The end of the stream, end marker included."""
    error: bytes
    """The provider's mid-stream error event."""
    garbled: bytes
    """An event whose data is not JSON (`malformed_body` on a stream)."""


def split(events: Sequence[tuple[bytes, bool]], *, error: bytes, garbled: bytes) -> Frames:
    """Frames from a stream's events, each marked True when it is a content chunk.

    The events before the first content chunk are the head, those after the last the tail;
    one between two chunks (a block's stop and the next one's start) goes out with the next
    chunk, so "after N chunks" counts content chunks whatever the blocks.
    """
    firsts = [i for i, (_, is_content) in enumerate(events) if is_content]
    if not firsts:
        raise ValueError("a stream needs at least one content chunk")
    head = tuple(frame for frame, _ in events[: firsts[0]])
    tail = tuple(frame for frame, _ in events[firsts[-1] + 1 :])
    content: list[bytes] = []
    pending = b""
    for frame, is_content in events[firsts[0] : firsts[-1] + 1]:
        pending += frame
        if is_content:
            content.append(pending)
            pending = b""
    return Frames(head=head, content=tuple(content), tail=tail, error=error, garbled=garbled)
