"""A streamed answer as frames, so faults can cut it at a content chunk whatever the API."""

from __future__ import annotations

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
