"""Runs each benchmark inside bench/.venv: the project plus the competitors it is measured against.

Competitors are never dependencies of the package; this venv is the only place they live.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"


def ensure_bench_venv() -> None:
    """Re-exec the current script in bench/.venv, creating or refreshing it when needed."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    inputs = b"".join(
        (ROOT / name).read_bytes()
        for name in (
            "pyproject.toml",
            "constraints.txt",
            "bench/requirements.txt",
            "bench/requirements-nodeps.txt",
        )
    )
    stamp = VENV / f".installed-{hashlib.sha256(inputs).hexdigest()[:16]}"
    python = VENV / "bin" / "python"
    if not stamp.exists():
        print("bench: preparing bench/.venv (project + competitors) ...", file=sys.stderr)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        # the distribution was named `resilience` before (a name another project holds)
        subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "resilience"])
        project = f"{ROOT}[gateway,postgres,redis]"
        subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), "-e", project], check=True)
        pins = ["-c", str(ROOT / "constraints.txt")]  # competitors must not move our pins
        subprocess.run([*pip, *pins, "-r", str(ROOT / "bench" / "requirements.txt")], check=True)
        nodeps = ROOT / "bench" / "requirements-nodeps.txt"
        subprocess.run([*pip, "--no-deps", "-r", str(nodeps)], check=True)
        for old in VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    os.execv(str(python), [str(python), *sys.argv])
