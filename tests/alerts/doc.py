"""docs/alerts.md read by the tests: its Python blocks and the metrics its rules use."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


def metric_names() -> set[str]:
    """Every `resilience_*` metric the documented Prometheus rules use."""
    (rules,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    return set(re.findall(r"\b(resilience_[a-z_]+)\b", rules))
