"""The audit trail: breaker transitions in `breaker_events`, queried with SQL."""

from resilience.audit.database import create_engine, database_url, migrate
from resilience.audit.sink import DatabaseSink, SinkStats

__all__ = ["DatabaseSink", "SinkStats", "create_engine", "database_url", "migrate"]
