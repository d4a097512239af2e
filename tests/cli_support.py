"""`supportbot ...` run as the operator runs it: a separate process of this checkout's code."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_supportbot(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    timeout: float = 90,
) -> subprocess.CompletedProcess:
    """``python -m bot ARGS`` with the test's environment, ``env`` added and ``unset`` removed."""
    environment = {k: v for k, v in os.environ.items() if k not in set(unset)}
    environment.update(env or {})
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), environment.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
