"""The `resilience` command: check a config, run the chaos upstream or the demo, migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from resilience.extras import missing


def _check_config(args: argparse.Namespace) -> int:
    from resilience.config.load import check_config

    ok, report = check_config(args.config)
    if not ok:
        print(f"config error: {report}", file=sys.stderr)
        return 1
    print(report)
    return 0


def _chaos(args: argparse.Namespace) -> int:
    from resilience.chaos.server import run

    run(host=args.host, port=args.port, seed=args.seed)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from resilience.gateway.demo import run_demo

    try:
        return asyncio.run(run_demo(fast=args.fast, keep=args.keep, port=args.port))
    except KeyboardInterrupt:
        return 0


def _serve(args: argparse.Namespace) -> int:
    import functools
    import logging
    import os

    try:
        import uvicorn
    except ImportError as exc:
        raise missing("uvicorn", "gateway", "resilience serve") from exc

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # httpx2 logs every upstream call at INFO: a second line per request beside uvicorn's
    # access log, which the gateway's metrics and audit trail already account for
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    if args.config:
        os.environ["RESILIENCE_CONFIG"] = args.config
    if args.body_read_timeout_s is not None:
        os.environ["RESILIENCE_BODY_READ_TIMEOUT_S"] = str(args.body_read_timeout_s)
    from resilience.one_write import PROTOCOL

    run = functools.partial(
        uvicorn.run,
        http=PROTOCOL,  # each answer's head and body in one write
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=args.access_log,
        timeout_graceful_shutdown=args.grace_s,
        timeout_keep_alive=args.keep_alive_s,
        limit_concurrency=args.limit_concurrency or None,
    )
    if args.workers == 1:
        from resilience.gateway import create_app

        run(create_app())
        return 0
    from resilience.gateway.settings import Settings

    Settings.from_env()  # a bad config or setting fails here, once, rather than in every worker
    with _metrics_directory() as directory:
        logging.getLogger("resilience.gateway").info(
            "%d workers; /metrics sums them through %s=%s", args.workers, MULTIPROC_ENV, directory
        )
        run(APP_FACTORY, factory=True, workers=args.workers, log_config=_worker_logging())
    return 0


APP_FACTORY = "resilience.gateway.factory:create_app"
"""What each worker imports and calls (uvicorn starts workers as fresh interpreters)."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's multiprocess switch; resilience.gateway.metrics_workers reads it too."""

LOG_FORMAT = "%(levelname)s:     %(name)s: %(message)s"


@contextlib.contextmanager
def _metrics_directory() -> Iterator[Path]:
    """Where the workers' metrics meet, set in the environment the workers inherit: the
    operator's `PROMETHEUS_MULTIPROC_DIR` emptied of an earlier run's files, else a
    temporary directory removed at exit."""
    import os
    import tempfile

    from resilience.gateway.metrics_workers import clear_directory

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        clear_directory(Path(given))
        yield Path(given)
        return
    with tempfile.TemporaryDirectory(prefix="resilience-metrics-") as made:
        os.environ[MULTIPROC_ENV] = made
        try:
            yield Path(made)
        finally:
            del os.environ[MULTIPROC_ENV]


def _worker_logging() -> dict[str, Any]:
    """uvicorn's logging plus what `_serve` sets up in its own process (workers are fresh
    interpreters, configured from this): the library's INFO lines, httpx2's per-call quiet."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["plain"] = {"format": LOG_FORMAT}
    config["handlers"]["plain"] = {
        "formatter": "plain",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["plain"], "level": "INFO"}
    config["loggers"]["httpx2"] = {"level": "WARNING"}
    return config


DEFAULT_LIMIT_CONCURRENCY = 1024
"""Past this many connections and requests at once, uvicorn answers 503 instead of taking more
(each takes a file descriptor and memory); raise it together with the open-file limit."""


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {raw!r}")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {raw!r}")
    return value


def _migrate(args: argparse.Namespace) -> int:
    from resilience.audit.database import database_url, migrate

    url = database_url(args.database_url)
    asyncio.run(migrate(url))
    shown = url.split("@")[-1] if "@" in url else url
    print(f"audit database is at the latest schema ({shown})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilience", description="Per-tenant resilience for LLM calls."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway (uvicorn)")
    serve.add_argument("--config", default=None, help="TOML config (default: $RESILIENCE_CONFIG)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes (default 1); with more, /metrics sums every worker's counts "
        "(prometheus_client's multiprocess mode, in $PROMETHEUS_MULTIPROC_DIR, emptied at "
        "start, else a temporary directory) and --limit-concurrency is per worker",
    )
    serve.add_argument(
        "--grace-s",
        type=float,
        default=30.0,
        help="on SIGTERM, how long requests under way may take to finish (default 30)",
    )
    serve.add_argument(
        "--keep-alive-s",
        type=int,
        default=75,
        help="idle keep-alive connections are closed after this long (default 75: longer "
        "than clients' and load balancers' own idle timeouts, so the server never closes a "
        "connection a client is about to reuse)",
    )
    serve.add_argument(
        "--limit-concurrency",
        type=_non_negative_int,
        default=DEFAULT_LIMIT_CONCURRENCY,
        help="connections and requests under way at once; past it new ones get 503 at once "
        f"instead of queueing (default {DEFAULT_LIMIT_CONCURRENCY}; 0: no limit)",
    )
    serve.add_argument(
        "--body-read-timeout-s",
        type=float,
        default=None,
        help="a request body not complete this long after the request began gets 408 "
        "(default 10, or $RESILIENCE_BODY_READ_TIMEOUT_S)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per request (uvicorn's access log); off by default: it costs about "
        "0.1 ms on each request's path, and /metrics and the audit trail already count "
        "every request",
    )
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check-config", help="validate a TOML config and exit")
    check.add_argument("config", nargs="?", default=None, help="path (default: $RESILIENCE_CONFIG)")
    check.set_defaults(run=_check_config)

    chaos = commands.add_parser("chaos", help="serve the fake Anthropic/OpenAI upstream")
    chaos.add_argument("--host", default="127.0.0.1")
    chaos.add_argument("--port", type=int, default=8900)
    chaos.add_argument("--seed", type=int, default=None, help="seed for probability faults")
    chaos.set_defaults(run=_chaos)

    demo = commands.add_parser("demo", help="an outage routed around, on the chaos upstream")
    demo.add_argument("--fast", action="store_true", help="a shorter run (CI)")
    demo.add_argument("--keep", action="store_true", help="keep serving for the dashboard")
    demo.add_argument("--port", type=int, default=0, help="gateway port (default: a free one)")
    demo.set_defaults(run=_demo)

    from resilience.cli.admin import add_commands
    from resilience.cli.usage import add_commands as add_usage_commands

    add_commands(commands)
    add_usage_commands(commands)

    migrate = commands.add_parser("migrate", help="bring the audit database to the latest schema")
    migrate.add_argument(
        "--database-url", default=None, help="default: $DATABASE_URL, else the embedded SQLite file"
    )
    migrate.set_defaults(run=_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code
