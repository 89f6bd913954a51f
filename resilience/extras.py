"""The error for an optional dependency that is not installed: it names the extra to install.

The plain install is the library; the gateway server, PostgreSQL, Redis and OpenTelemetry
come with extras, imported only where they are used.
"""

from __future__ import annotations

DISTRIBUTION = "llm-tenant-resilience"
"""The name on the package index (the import package is `resilience`)."""


def missing(package: str, extra: str, needed_for: str) -> ImportError:
    """`raise missing("uvicorn", "gateway", "serving the gateway") from exc`."""
    return ImportError(
        f"{needed_for} needs the {package!r} package, which the plain install leaves out: "
        f"pip install '{DISTRIBUTION}[{extra}]'",
        name=package,
    )
