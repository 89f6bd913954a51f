"""Where breakers live: in this process (`MemoryStore`) or shared through Redis (`RedisStore`,
imported from `resilience.breaker.store.redis`, which needs the `redis` extra)."""

from resilience.breaker.store.base import BreakerStore
from resilience.breaker.store.memory import MemoryStore

__all__ = ["BreakerStore", "MemoryStore"]
