"""`resilience circuits | reset | open | events`: the admin API of a running gateway, from a shell.

The gateway URL comes from `--url` (default `$RESILIENCE_URL`, else
http://127.0.0.1:8000) and the admin token from `--token` (default
`$RESILIENCE_ADMIN_TOKEN`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

import httpx2

from resilience.breaker.machine import MAX_DURATION_S, check_duration


def add_commands(commands: Any) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--url", default=os.environ.get("RESILIENCE_URL", "http://127.0.0.1:8000")
        )
        parser.add_argument("--token", default=os.environ.get("RESILIENCE_ADMIN_TOKEN"))
        parser.add_argument("--json", action="store_true", help="print the raw JSON")

    circuits = commands.add_parser("circuits", help="list breakers of a running gateway")
    common(circuits)
    for name in ("tenant", "provider", "state"):
        circuits.add_argument(f"--{name}")
    circuits.set_defaults(run=_circuits)

    for verb, helptext in (("reset", "close a breaker"), ("open", "force a breaker open")):
        parser = commands.add_parser(verb, help=helptext)
        common(parser)
        parser.add_argument("tenant", help="tenant id, or * for the provider-wide breaker")
        parser.add_argument("provider")
        parser.add_argument("--reason")
        if verb == "open":
            parser.add_argument(
                "--duration-s",
                type=_duration,
                help=f"seconds, at most {MAX_DURATION_S} (30 days); omit it to stay open "
                "until reset",
            )
        parser.set_defaults(run=_change, verb=verb)

    events = commands.add_parser("events", help="audit events of a running gateway")
    common(events)
    for name in ("tenant", "provider", "since", "until", "cursor"):
        events.add_argument(f"--{name}")
    events.add_argument("--limit", type=int, default=50)
    events.set_defaults(run=_events)


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
    if not args.token:
        print("error: give --token or set RESILIENCE_ADMIN_TOKEN", file=sys.stderr)
        return None
    headers = {"authorization": f"Bearer {args.token}"}
    try:
        response = httpx2.request(
            method, args.url.rstrip("/") + path, headers=headers, timeout=10, **kwargs
        )
    except httpx2.HTTPError as exc:
        print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        print(f"error {response.status_code}: not a JSON object", file=sys.stderr)
        return None
    if response.status_code >= 400:
        print(
            f"error {response.status_code}: {body.get('error', {}).get('message', body)}",
            file=sys.stderr,
        )
        return None
    return body


def _duration(text: str) -> float:
    """`--duration-s`, refused here as the gateway would refuse it."""
    try:
        seconds = float(text)
        check_duration(seconds)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return seconds


def _params(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _circuits(args: argparse.Namespace) -> int:
    body = _call(
        args, "GET", "/admin/circuits", params=_params(args, ("tenant", "provider", "state"))
    )
    if body is None:
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(f"{'tenant':<16} {'provider':<12} {'state':<12} {'failures':>8}  retry_at")
    for c in body["circuits"]:
        retry = c["retry_at"] or "-"
        print(f"{c['tenant']:<16} {c['provider']:<12} {c['state']:<12} {c['failures']:>8}  {retry}")
    return 0


def _change(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = _params(args, ("reason",))
    if getattr(args, "duration_s", None) is not None:
        payload["duration_s"] = args.duration_s
    path = f"/admin/circuits/{quote(args.tenant, safe='')}/{quote(args.provider, safe='')}"
    path += f"/{args.verb}"
    body = _call(args, "POST", path, json=payload)
    if body is None:
        return 1
    print(
        json.dumps(body) if args.json else f"{body['tenant']}/{body['provider']}: {body['state']}"
    )
    return 0


def _events(args: argparse.Namespace) -> int:
    params = _params(args, ("tenant", "provider", "since", "until", "cursor", "limit"))
    body = _call(args, "GET", "/admin/events", params=params)
    if body is None:
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    for e in body["events"]:
        actor = f" by {e['actor']}" if e["actor"] else ""
        kind = f" ({e['error_kind']})" if e["error_kind"] else ""
        where = f"{e['tenant_id']}/{e['provider']}"
        change = f"{e['from_state']} -> {e['to_state']}: {e['reason']}{kind}{actor}"
        print(f"{e['occurred_at']} {where} {change}")
    if body["next_cursor"]:
        print(f"more: --cursor {body['next_cursor']}")
    return 0
