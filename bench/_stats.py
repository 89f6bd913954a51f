"""Figures as every benchmark reports them: median with min-max, and the closing headline lines.

`bench/run` reads the last `name: value` lines of each command, so every command ends with
`headline(...)` and prints nothing after it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def summary(samples: Sequence[float], digits: int = 3) -> str:
    """`median M (min A, max B)`: the spread says how far one figure can be trusted."""
    return (
        f"median {statistics.median(samples):.{digits}f} "
        f"(min {min(samples):.{digits}f}, max {max(samples):.{digits}f})"
    )


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank: no interpolation between two calls."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def headline(figures: dict[str, float]) -> None:
    """Print the closing `name: value` lines (blank line first, nothing after)."""
    print()
    for name, value in figures.items():
        print(f"{name}: {plain(value)}")


def plain(value: float) -> str:
    """A number without exponent, with digits that mean something at its size."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    size = abs(value)
    return f"{value:.1f}" if size >= 100 else f"{value:.3f}" if size >= 1 else f"{value:.4f}"
