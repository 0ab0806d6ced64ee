"""The layers are a checked contract: import-linter runs the contracts in pyproject.toml over the source tree.

- `test_import_contracts_are_kept` runs `lint-imports` (the tool's own command) on this tree; a broken contract
  fails with import-linter's report, which names the importing and the imported module and the line.
- `test_an_upward_import_breaks_the_contract` copies the tree, adds an upward import, a second paramiko importer
  and a cycle, and checks that lint-imports fails on each, by name: the contract is not vacuous.
- `test_architecture_picture_matches_the_contract`: the layer picture in docs/architecture.md is generated from
  the contract (`python tests/test_architecture.py` rewrites it), so the page cannot drift from the code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- layers: generated from pyproject.toml [tool.importlinter] by `python tests/test_architecture.py` -->"
END = "<!-- end of generated layers -->"


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the `labctl` package under `tree`, with the contracts of this repository's pyproject."""
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.is_file(), "import-linter is a test dependency: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": str(tree), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    r = lint_imports(ROOT)
    assert r.returncode == 0, f"import contracts broken:\n{r.stdout[-6000:]}\n{r.stderr[-2000:]}"
    assert "0 broken" in r.stdout and "layers point one way KEPT" in r.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "labctl", tmp_path / "labctl", ignore=shutil.ignore_patterns("__pycache__"))

    def add(module: str, line: str) -> None:
        path = tmp_path / (module.replace(".", "/") + ".py")
        path.write_text(path.read_text() + f"\n\ndef _injected():\n    {line}\n")

    add("labctl.topology.model", "from labctl.cli import main")  # a domain module reaching up into the CLI
    add("labctl.workstation.driver", "from labctl.sim import workstation")  # the real driver knowing its twin
    add("labctl.vib.deploy", "import paramiko")  # SSH outside remote/connection.py
    add("labctl.vib.ar", "from labctl.vib import inspect")  # a format module importing its command: a cycle
    r = lint_imports(tmp_path)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0, out
    assert "labctl.topology.model -> labctl.cli.main" in out
    assert "labctl.workstation.driver -> labctl.sim.workstation" in out
    assert "labctl.vib.deploy -> paramiko" in out
    assert "No cycles are allowed in labctl.vib" in out and ".ar -> .inspect" in out


# ---- the picture ------------------------------------------------------------------------------------------
def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _short(module: str) -> str:
    """labctl.cli -> cli/, labctl.remote.connection -> remote/connection.py (packages end in /)."""
    rel = module.removeprefix("labctl.").replace(".", "/")
    return rel + "/" if (ROOT / "labctl" / rel).is_dir() else rel + ".py"


def picture() -> str:
    """The layer diagram and the other contracts, as docs/architecture.md shows them."""
    lines = ["```", "top (each line imports only from the lines below it)"]
    for layer in next(c for c in contracts() if c.get("id") == "layers")["layers"]:
        lines.append("  " + " | ".join(_short(m.strip()) for m in layer.split("|")))
    lines += ["bottom", "```", "",
              "Packages on one line (`|`) do not import each other. Third-party and process-starting modules:"]
    for c in contracts():
        if c["type"] == "protected":
            allowed = ", ".join(f"`{_short(m)}`" for m in c["allowed_importers"])
            what = ", ".join(f"`{m}`" for m in c["protected_modules"])
            extra = "".join(f" (one listed exception: `{_short(i.split(' -> ')[0])}`)"
                            for i in c.get("ignore_imports", []))
            lines.append(f"- {what}: imported only in {allowed}{extra}")
        elif c["type"] == "acyclic_siblings":
            lines.append("- no import cycles between sibling modules anywhere in `labctl`")
    return "\n".join(lines) + "\n"


def _doc_block(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def test_architecture_picture_matches_the_contract():
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC} lost its generated block"
    assert _doc_block(text) == picture(), "docs/architecture.md is out of date: run `python tests/test_architecture.py`"
    for layer in next(c for c in contracts() if c.get("id") == "layers")["layers"]:
        for m in layer.split("|"):
            if m.strip() != "labctl.__main__":
                row = f"| `labctl/{_short(m.strip())}` |"
                assert row in text, f"docs/architecture.md's table has no row for {m.strip()}"


def test_every_top_level_package_is_in_a_layer():
    layered = {m.strip() for c in contracts() if c.get("id") == "layers" for layer in c["layers"]
               for m in layer.split("|")}
    present = {f"labctl.{p.stem}" for p in (ROOT / "labctl").iterdir()
               if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert present - layered == set(), "put new packages into the layers contract in pyproject.toml"


if __name__ == "__main__":  # regenerate the picture in docs/architecture.md
    text = DOC.read_text()
    new = text[: text.index(BEGIN) + len(BEGIN)] + "\n" + picture() + text[text.index(END):]
    DOC.write_text(new)
    print(f"updated {DOC.relative_to(ROOT)}" if new != text else f"{DOC.relative_to(ROOT)} is up to date")
