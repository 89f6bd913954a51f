"""The README's audit SQL per dialect: the demo runs it, the tests check it, so it cannot rot."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from resilience.extras import DISTRIBUTION

README = Path(__file__).resolve().parents[2] / "README.md"
"""In a checkout; an installed package reads the same text from its metadata."""
_BLOCK = re.compile(r"```sql\n(-- name: (\w+)( \(sqlite\))?\n.*?)```", re.S)


def readme_queries(dialect: str, path: Path = README) -> dict[str, str]:
    """name -> SQL for `dialect` ("postgresql" or "sqlite"); SQLite spellings win on SQLite."""
    found: dict[str, str] = {}
    variants: dict[str, str] = {}
    for sql, name, sqlite_only in _BLOCK.findall(_readme_text(path)):
        (variants if sqlite_only else found)[name] = sql
    if dialect == "sqlite":
        found.update(variants)
    return found


def _readme_text(path: Path) -> str:
    """The README file, else (installed from a wheel) the distribution's long description,
    which is the same README."""
    if path.is_file():
        return path.read_text()
    description = metadata.metadata(DISTRIBUTION).json.get("description", "")
    return description if isinstance(description, str) else ""
