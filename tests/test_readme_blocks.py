"""Every Python code block of README.md runs, as written, in a fresh interpreter.

Convention: a README Python block is a whole script a reader can paste into a file and run
(no `...` placeholders, no top-level `await`: `asyncio.run(main())`). The harness gives it
only what a reader brings: a working directory holding the `gateway.toml` a block loads,
pointed at a chaos upstream this test serves on loopback, and the key variable that file
names. After the block, the check for its section runs in the same namespace (top-level
`await` allowed there) and asserts that the block did what the README says. One block is
skipped here: the complete FastAPI app (`FASTAPI_SECTION`), which is
examples/fastapi_app/app.py word for word and needs PostgreSQL and uvicorn;
tests/examples/test_fastapi_app.py runs it as an app and checks the two texts are one. A new
block needs a check here (`test_every_block_has_a_check`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from resilience.chaos import ChaosUpstream, Fault

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TIMEOUT_S = 120

RUNNER = textwrap.dedent(
    """
    import ast, asyncio, sys

    namespace = {"__name__": "__main__"}
    block, check = sys.argv[1:3]
    with open(block) as f:
        exec(compile(f.read(), "README block", "exec"), namespace)

    async def run_check():
        with open(check) as f:
            code = compile(f.read(), "check", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        pending = eval(code, namespace)
        if pending is not None:
            await pending

    asyncio.run(run_check())
    print("CHECKED")
    """
)


@dataclass(frozen=True)
class Block:
    section: str
    """The `## ` heading above the block."""
    line: int
    source: str


def python_blocks(text: str) -> list[Block]:
    blocks = []
    section = ""
    fence = re.compile(r"^```python\n(.*?)^```$", flags=re.S | re.M)
    for match in fence.finditer(text):
        before = text[: match.start()]
        headings = re.findall(r"^## (.+)$", before, flags=re.M)
        section = headings[-1] if headings else ""
        blocks.append(Block(section, before.count("\n") + 1, match.group(1)))
    return blocks


CHECKS: dict[str, str] = {
    "Mount the tenant middleware": """
import httpx2

async def whoami_of(asgi, headers):
    transport = httpx2.ASGITransport(app=asgi)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.get("/whoami", headers=headers)

answer = await whoami_of(app, {"x-tenant-id": "acme"})
assert (answer.status_code, answer.json()) == (200, {"tenant": "acme"}), answer.text
assert (await whoami_of(app, {})).status_code == 401            # missing tenant
assert (await whoami_of(app, {"x-tenant-id": "a/b"})).status_code == 400  # malformed id
answer = await whoami_of(keyed, {"authorization": "Bearer acme-key"})
assert (answer.status_code, answer.json()) == (200, {"tenant": "acme"}), answer.text
answer = await whoami_of(keyed, {"authorization": "Bearer other-key"})
assert answer.status_code == 401 and answer.json()["error"], answer.text  # unknown key
from resilience import NoTenantError
try:
    current_tenant()
except NoTenantError:
    pass
else:
    raise AssertionError("current_tenant() outside a request must raise NoTenantError")
""",
    "Use the breaker registry": """
snapshot = registry.snapshot("acme", "openai")
assert snapshot is not None and snapshot.state is BreakerState.CLOSED, snapshot  # reset
assert registry.circuits(state=BreakerState.OPEN) == []
""",
    "Call LLMs through the resilient client": """
import httpx2

async with lifespan(app):
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
        answer = await http.post(
            "/ask", json={"question": "hello"}, headers={"authorization": "Bearer acme-key"}
        )
        refused = await http.post("/ask", json={"question": "hello"})
assert answer.status_code == 200, answer.text
# openai answers 503 (the test scripts it): two attempts, then anthropic answers
assert answer.json() == {
    "answer": "ok: hello (answered by chaos)",
    "by": "anthropic:claude-sonnet-4-6",
    "attempts": 3,
}, answer.text
assert refused.status_code == 401, refused.text
""",
    "Groups, rate limits, health and tracing": """
[group, single] = chat.targets
assert [str(m) for m in group.members] == ["openai-a:gpt-4.1", "openai-b:gpt-4.1"]
assert group.strategy == "round_robin"
assert str(single) == "anthropic:claude-sonnet-4-6"
""",
    "The chaos upstream": """
assert chaos.hit_count(upstream="openai") == 3
""",
    "Configuration": """
assert local.base_url == "http://127.0.0.1:8000/v1" and local.location == "local"
""",
}

EXPECTED_OUTPUT: dict[str, list[str]] = {
    "Use the breaker registry": ["skip openai for acme for 30 s"],
    "The chaos upstream": ["503", "503", "ok: hello (answered by chaos)", "3"],
    "Configuration": ["local local True"],
}
"""Lines the block prints, in order, among what it prints (the README's comments say so)."""


def gateway_toml(root: str) -> str:
    """The `gateway.toml` the client block loads: two providers on the chaos upstream."""
    key_hash = hashlib.sha256(b"acme-key").hexdigest()
    return textwrap.dedent(
        f"""
        [retry]
        max_attempts = 2
        base_delay_s = 0.01
        max_delay_s = 0.02

        [providers.openai]
        kind = "openai"
        api_key_env = "CHAOS_API_KEY"
        base_url = "{root}/openai/v1"

        [providers.anthropic]
        kind = "anthropic"
        api_key_env = "CHAOS_API_KEY"
        base_url = "{root}/anthropic"

        [routes.chat]
        targets = ["openai:gpt-4.1", "anthropic:claude-sonnet-4-6"]

        [tenants.acme]
        api_key_sha256 = ["{key_hash}"]
        """
    )


async def run_block(block: Block, workdir: Path) -> str:
    """Run the block and its check in a fresh interpreter; return what it printed."""
    (workdir / "block.py").write_text(block.source)
    (workdir / "check.py").write_text(CHECKS[block.section])
    ours = ("RESILIENCE_", "REDIS_", "DATABASE_URL")  # a reader's shell has none of these
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(PYTHONPATH=str(ROOT), CHAOS_API_KEY="chaos-key", PYTHONUNBUFFERED="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUNNER,
        "block.py",
        "check.py",
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 0, (
        f"README block at line {block.line} ({block.section}) failed:\n{stdout}\n{stderr}"
    )
    assert stdout.rstrip().endswith("CHECKED"), stdout
    return stdout


FASTAPI_SECTION = "A complete FastAPI app"
"""Skipped: tests/examples/test_fastapi_app.py runs this block as examples/fastapi_app/app.py,
under uvicorn with PostgreSQL, and checks that the block and the file are the same text."""

BLOCKS = [b for b in python_blocks(README.read_text()) if b.section != FASTAPI_SECTION]


def test_every_block_has_a_check() -> None:
    sections = [b.section for b in BLOCKS]
    assert len(BLOCKS) >= 5
    assert len(set(sections)) == len(sections), "one Python block per section, for its check"
    assert set(sections) == set(CHECKS), "a README Python block without a check, or the reverse"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.section for b in BLOCKS])
async def test_readme_block_runs(block: Block, tmp_path: Path) -> None:
    chaos = ChaosUpstream()
    chaos.add_fault(Fault(status=503), upstream="openai")  # for the client block's fallback
    async with chaos.serve() as root:
        (tmp_path / "gateway.toml").write_text(gateway_toml(root))
        stdout = await run_block(block, tmp_path)
    lines = stdout.splitlines()
    expected = EXPECTED_OUTPUT.get(block.section, [])
    found = [line for line in lines if line in expected]
    assert found == expected, stdout
    if block.section == "Call LLMs through the resilient client":
        # the block's calls reached the upstream: two attempts at openai, one at anthropic
        assert chaos.hit_count(upstream="openai") == 2
        assert chaos.hit_count(upstream="anthropic") == 1
    else:
        assert chaos.hit_count() == 0  # no other block calls a provider outside its process
