"""Outside tools the tests hold labctl to (OpenSSH, ansible, …): found or skipped locally, required in CI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def need_tool(tool: str) -> str:
    """The path of `tool`: an absolute path as given, else a script beside this interpreter (test extras such as
    ansible-core install there, on PATH or not), else PATH. Missing: a skip locally, a failure under CI."""
    if "/" in tool:
        path = tool if os.path.exists(tool) else None
    else:
        beside = Path(sys.executable).parent / tool
        path = str(beside) if beside.exists() else shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: .ci/run installs it")
        pytest.skip(f"{tool} not installed")
    return path
