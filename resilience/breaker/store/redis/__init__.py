"""Breakers shared through Redis: the store (`store.py`: connection, scripts, change channel),
the shared view of each breaker (`shared.py`), the Lua scripts that decide for every process.
Needs the `redis` extra."""

from resilience.breaker.store.redis.store import RedisStore

__all__ = ["RedisStore"]
