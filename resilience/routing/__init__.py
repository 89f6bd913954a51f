"""Where a call may go: routes and groups of targets, how a group orders them, the health
board that orders them by what it saw, and per-provider rate limits."""

from resilience.routing.health import HealthBoard, HealthSnapshot
from resilience.routing.routes import Group, Route, Strategy, Target

__all__ = ["Group", "HealthBoard", "HealthSnapshot", "Route", "Strategy", "Target"]
