"""Where breakers live: in this process (`MemoryStore`) or shared through Redis (`RedisStore`,
imported from `resilience.store.redis`, which needs the `redis` extra)."""

from resilience.store.base import BreakerStore
from resilience.store.memory import MemoryStore

__all__ = ["BreakerStore", "MemoryStore"]
