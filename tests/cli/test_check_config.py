"""The `resilience check-config` command, in process and as a command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resilience.cli.main import main as cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.toml"


ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-secret-value",
    "OPENAI_API_KEY": "sk-openai-secret-value",
    "ACME_OPENAI_KEY": "sk-acme-secret-value",
}


def test_check_config_command_reports_ok_or_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert cli(["check-config", str(EXAMPLE)]) == 0
    assert "ok: 4 providers, 3 routes (1 group), 2 tenants" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.a]\nkind = "openai"\n[routes.chat]\ntargets = ["opnai:x"]\n')
    assert cli(["check-config", str(bad)]) == 1
    assert "routes.chat.targets[0]: unknown provider 'opnai'" in capsys.readouterr().err


def test_check_config_runs_as_a_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[breaker]\ncooldown_s = -3\n")
    done = subprocess.run(
        [sys.executable, "-m", "resilience.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "breaker.cooldown_s: must be > 0, got -3" in done.stderr
