"""`resilience usage prune --older-than 90d`: the usage records' retention job (cron it)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any


def add_commands(commands: Any) -> None:
    usage = commands.add_parser("usage", help="the usage records in the audit database")
    actions = usage.add_subparsers(dest="action", required=True)
    prune = actions.add_parser("prune", help="delete usage records older than a given age")
    prune.add_argument(
        "--older-than", required=True, type=_age, help="an age such as 90d, 12h or 2w"
    )
    prune.add_argument(
        "--database-url", default=None, help="default: $DATABASE_URL, else the embedded SQLite file"
    )
    prune.add_argument(
        "--batch", type=int, default=10_000, help="rows per delete transaction (default 10000)"
    )
    prune.set_defaults(run=_prune)


def _age(raw: str) -> Any:
    from resilience.audit.usage_retention import parse_age

    try:
        return parse_age(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _prune(args: argparse.Namespace) -> int:
    from resilience.audit.database import create_engine
    from resilience.audit.usage_retention import prune_usage

    before = datetime.now(UTC) - args.older_than

    async def run() -> int:
        engine = create_engine(args.database_url)
        try:
            return await prune_usage(engine, before=before, batch=args.batch)
        finally:
            await engine.dispose()

    deleted = asyncio.run(run())
    print(f"deleted {deleted} usage records that occurred before {before.isoformat()}")
    return 0
