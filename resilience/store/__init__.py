"""Where breakers live: in this process (`MemoryStore`) or, later, shared through Redis."""

from resilience.store.base import BreakerStore
from resilience.store.memory import MemoryStore

__all__ = ["BreakerStore", "MemoryStore"]
