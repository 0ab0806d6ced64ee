"""Suite-wide fixtures. Network safety: pytest-socket (pyproject addopts) allows only loopback connections."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.env import Env
from labctl.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"

# Tests give labctl a private HOME; the vCenter simulator's build cache stays the user's, so vcsim is compiled once
# per machine instead of once per test (a Go build is ~1 CPU-minute). A test about the build sets its own.
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))


@dataclass
class CliResult:
    status: int
    out: str
    err: str


@pytest.fixture
def run_cli(tmp_path):
    """Run labctl in-process: run_cli("validate", "x.yaml", environ={...}, cwd=...) -> CliResult."""

    def _run(*argv: str, environ: dict[str, str] | None = None, cwd: Path | None = None, stdin: str = "") -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        env = Env(stdout=out, stderr=err, stdin=io.StringIO(stdin), environ=dict(environ or {}), cwd=cwd or tmp_path)
        status = main(list(argv), env)
        return CliResult(int(status), out.getvalue(), err.getvalue())

    return _run


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures not present")
    return FIXTURES
