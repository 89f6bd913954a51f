"""A local JSON-lines file that holds audit rows the database could not take yet.

Appends are fsynced per batch. Replay first renames the file aside, so rows
spooled while a replay runs land in a fresh file; a replay interrupted by a
crash leaves the renamed file, which the next start replays again (inserts are
idempotent on the row id, so replaying twice never duplicates).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class Spool:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.replaying = self.path.with_name(self.path.name + ".replaying")

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append rows durably (blocking: call it in a thread from async code)."""
        lines = [json.dumps(row, separators=(",", ":")) + "\n" for row in rows]
        if not lines:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as file:
            file.writelines(lines)
            file.flush()
            os.fsync(file.fileno())
        return len(lines)

    def claim(self) -> Path | None:
        """The file to replay: an interrupted replay first, else the spool moved aside."""
        if self.replaying.exists():
            return self.replaying
        if self.path.exists() and self.path.stat().st_size > 0:
            os.replace(self.path, self.replaying)
            return self.replaying
        return None

    @staticmethod
    def read(path: Path, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        with open(path, encoding="utf-8") as file:
            for line in file:
                if not line.strip():
                    continue
                try:
                    batch.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line torn by a crash mid-write: its batch was not confirmed
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def pending(self) -> bool:
        return any(p.exists() and p.stat().st_size > 0 for p in (self.path, self.replaying))

    def count(self) -> int:
        total = 0
        for p in (self.path, self.replaying):
            if p.exists():
                with open(p, encoding="utf-8") as file:
                    total += sum(1 for line in file if line.strip())
        return total
