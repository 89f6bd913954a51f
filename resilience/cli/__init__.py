"""The `resilience` command: serve, migrate, chaos, demo and the admin subcommands."""

from resilience.cli.main import main

__all__ = ["main"]
