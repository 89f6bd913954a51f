"""Breakers shared through Redis: the store, the shared view of each breaker, the Lua scripts
that decide for every process. Needs the `redis` extra."""

from resilience.breaker.store.redis.store import RedisStore

__all__ = ["RedisStore"]
