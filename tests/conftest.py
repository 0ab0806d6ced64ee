"""Suite-wide fixtures. Network safety: pytest-socket (pyproject addopts) allows only loopback connections."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
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

# hypothesis keeps its home (example database, constants cache) in the cwd's .hypothesis/: a temporary one instead,
# so the suite leaves nothing in the checkout (removed when the session ends)
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="labctl-tests-hypothesis-")
try:
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(_HYPOTHESIS_HOME)
except ImportError:  # pragma: no cover - the test extras install it
    pass

# The checkout before and after the session: a test that writes into it (a VIB built into build/, setuptools'
# build/ and egg-info, a golden written by accident) fails the run. Caches and the venv are not the suite's output.
_NOT_OUTPUT = {".git", "__pycache__", ".pytest_cache", ".venv", ".ruff_cache"}


def _checkout_tree() -> set[str]:
    out: set[str] = set()
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = [x for x in dirs if x not in _NOT_OUTPUT]
        rel = os.path.relpath(d, ROOT)
        out.update(os.path.normpath(os.path.join(rel, x)) + "/" for x in dirs)
        out.update(os.path.normpath(os.path.join(rel, f)) for f in files if not f.endswith(".pyc"))
    return out


def pytest_sessionstart(session):
    session.config._labctl_checkout = _checkout_tree()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)
    before = getattr(session.config, "_labctl_checkout", None)
    if before is None:
        return
    left = sorted(_checkout_tree() - before)
    if left:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = f"the test suite left {len(left)} new file(s) in the checkout {ROOT}: " + ", ".join(left[:20])
        if tr is not None:
            tr.write("\n")
            tr.write_line(msg, red=True, bold=True)
        else:  # pragma: no cover
            print(msg)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Where CI promises vcsim (.ci/run sets LABCTL_REQUIRE_VCSIM=1 and installs Go and govmomi), a test that would
    skip because vcsim could not be built fails instead: the vSphere code is then not tested at all."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("LABCTL_REQUIRE_VCSIM") == "1" and isinstance(rep.longrepr, tuple):
        reason = str(rep.longrepr[2])
        if "vcsim unavailable" in reason:
            rep.outcome = "failed"
            rep.longrepr = f"LABCTL_REQUIRE_VCSIM=1 but {reason.removeprefix('Skipped: ')}"
