"""How pytest-xdist spreads the suite over its workers (`scripts/test` runs `-n logical`).

Every test makes its own Redis prefix, PostgreSQL database, ports and temporary folders, so
any two may run at once; the few below share something outside themselves and run on one
worker, one after the other. xdist's own `--dist loadgroup` (the `xdist_group` mark) cannot
do it here: it appends the group to each node id, which pytest 9 no longer lets a plugin change.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

GROUPS = {
    # the first of them builds bench/.venv (a folder of the checkout) that the others run in
    "tests/test_bench_smoke.py::test_bench_command_prints_its_figures[": "bench-venv",
    # module-scoped fixtures build a wheel and a venv it is installed in: worth doing once
    "tests/packaging/test_wheel.py::": "wheel",
}
"""Node id prefixes, and the group whose tests share one worker."""


class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no type hints
    """xdist's `load`, but each of GROUPS is one unit of work and every other test a unit of
    its own; units with the most tests are handed out first, so the groups start at once."""

    def _split_scope(self, nodeid: str) -> str:
        for prefix, group in GROUPS.items():
            if nodeid.startswith(prefix):
                return group
        return nodeid
