"""bench/RESULTS.md from the figures of one `bench/run`: machine, versions, goals, every figure.

Figures are the closing `name: value` lines of each command; a command run several times
gives each figure as median with min-max. Ratios are figures too: each was measured
within one run of its command, against a baseline from that same run.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench._stats import plain

PACKAGES = (
    "llm-tenant-resilience",
    "openai",
    "anthropic",
    "httpx2",
    "tenacity",
    "pybreaker",
    "circuitbreaker",
    "aiobreaker",
    "purgatory",
    "litellm",
)


@dataclass
class Command:
    """One bench command: what it measures, and each run's closing figures."""

    script: str
    title: str
    args: tuple[str, ...] = ()
    repeats: int = 3
    why: str = ""
    """Why it runs as often as it does, when that is not obvious."""
    runs: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    output: str = ""

    def figure(self, name: str) -> float | None:
        values = [run[name] for run in self.runs if name in run]
        return statistics.median(values) if values else None

    def names(self) -> list[str]:
        seen: dict[str, None] = {}
        for run in self.runs:
            seen.update(dict.fromkeys(run))
        return list(seen)

    def cell(self, name: str) -> str:
        values = [run[name] for run in self.runs if name in run]
        middle = plain(statistics.median(values))
        if len(values) < 2 or min(values) == max(values):
            return middle
        return f"{middle} ({plain(min(values))} to {plain(max(values))})"


@dataclass(frozen=True)
class Goal:
    what: str
    figure: str
    met: Callable[[float], bool]
    target: str


def machine() -> list[str]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as info:
        mem_kb = int(info.readline().split()[1])
    return [
        f"- {platform.platform()}, {cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB",
        f"- Python {platform.python_version()}",
        "- " + ", ".join(f"{p} {version(p)}" for p in PACKAGES),
    ]


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def render(
    commands: list[Command],
    goals: list[Goal],
    *,
    started: str,
    minutes: float,
    load: tuple[str, str],
    notes: str,
) -> str:
    by_name = {name: c for c in commands for name in c.names()}
    lines = [
        "# Benchmark results",
        "",
        f"Written by `bench/run` on {started}; the whole run took {minutes:.1f} minutes.",
        "Every comparison is a ratio measured inside one run of its command, against a",
        "baseline from that same run. Figures are medians; where a command ran more than",
        "once, min to max over its runs follow in brackets.",
        "",
        "## Machine",
        "",
        *machine(),
        f"- load average before: {load[0]}; after: {load[1]} (2 cores, shared with"
        " another engineer's test runs: expect noise)",
        "",
        "## Goals",
        "",
        "| goal | figure | measured | target | |",
        "|---|---|---|---|---|",
    ]
    for goal in goals:
        command = by_name.get(goal.figure)
        value = command.figure(goal.figure) if command else None
        shown = command.cell(goal.figure) if command and value is not None else "not measured"
        verdict = "" if value is None else ("met" if goal.met(value) else "**missed**")
        lines.append(f"| {goal.what} | `{goal.figure}` | {shown} | {goal.target} | {verdict} |")
    for command in commands:
        runs = len(command.runs)
        took = statistics.median(command.seconds) if command.seconds else 0.0
        lines += [
            "",
            f"## {command.title}",
            "",
            f"`python bench/{command.script} {' '.join(command.args)}`".replace(" `", "`"),
            f"— {runs} run{'s' if runs != 1 else ''}, {took:.0f} s each. {command.why}".rstrip(),
            "",
            "| figure | value |",
            "|---|---|",
            *(f"| `{name}` | {command.cell(name)} |" for name in command.names()),
            "",
            "<details><summary>output of the last run</summary>",
            "",
            "```",
            command.output.strip(),
            "```",
            "",
            "</details>",
        ]
    lines += ["", notes.strip(), ""]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
