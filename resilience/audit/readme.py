"""The README's audit SQL per dialect: the demo runs it, the tests check it, so it cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

from resilience.audit.database import ROOT

README = ROOT / "README.md"
_BLOCK = re.compile(r"```sql\n(-- name: (\w+)( \(sqlite\))?\n.*?)```", re.S)


def readme_queries(dialect: str, path: Path = README) -> dict[str, str]:
    """name -> SQL for `dialect` ("postgresql" or "sqlite"); SQLite spellings win on SQLite."""
    found: dict[str, str] = {}
    variants: dict[str, str] = {}
    for sql, name, sqlite_only in _BLOCK.findall(path.read_text()):
        (variants if sqlite_only else found)[name] = sql
    if dialect == "sqlite":
        found.update(variants)
    return found
