"""One CLI (issue 12 items 13-17): FILE taken the same way, one status per condition, one spelling per flag,
examples in every --help, colour only on a terminal, read-only commands that say what they would do."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from labctl.env import Env
from labctl.cli.main import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parent.parent
TRIO = ROOT / "topologies" / "esxi8-ha-trio.yaml"
PAIR = ROOT / "topologies" / "esx35-ha-pair.yaml"
VIB = ROOT.parent / "shared" / "fixtures" / "vib" / "fwrule-ntpServer-1.0.0-1.vib"


def _walk(p: argparse.ArgumentParser, path: list[str]):
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _walk(sp, path + [name])


def every_parser():
    """(command words, parser) for every command and subcommand, each configured as its --help would be."""
    for cmd in COMMANDS:
        top = build_parser([cmd])
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices[cmd]
        yield from _walk(sub, [cmd])


ALL = list(every_parser())


# ---- item 16: every --help teaches with examples -------------------------------------------------------------
@pytest.mark.parametrize("words", [w for w, _ in ALL], ids=[" ".join(w) for w, _ in ALL])
def test_every_help_has_examples(words, run_cli):
    r = run_cli(*words, "--help")
    assert r.status == 0
    assert "examples:" in r.out and "labctl " + words[0] in r.out.split("examples:", 1)[1], r.out
    assert "exit status" in r.out or words[0] in ("graph", "inventory", "schema"), "exit statuses not documented"


def test_the_walk_reaches_the_subcommands():
    names = {" ".join(w) for w, _ in ALL}
    assert {"sim up", "sim status", "sim down", "sim exec", "sim fault", "vib inspect", "vmnet check"} <= names


# ---- item 15: one spelling per flag ----------------------------------------------------------------------------
def test_one_spelling_per_flag():
    seen: dict[str, set[str]] = {}
    for words, p in ALL:
        for a in p._actions:
            if a.help == argparse.SUPPRESS:
                continue
            for opt in a.option_strings:
                if opt in ("--sim-dir", "--lab", "--host", "--thumbprint", "--hosts"):
                    seen.setdefault(opt, set()).add(str(a.metavar))
            if not a.option_strings and a.dest == "file" and words[0] != "vib":
                assert a.metavar == "FILE", (words, a.metavar)
    assert seen["--sim-dir"] == {"DIR"}
    assert seen["--lab"] == {"FILE"}
    assert seen["--host"] == {"NAME"}
    assert "--hosts" not in seen  # the old spelling is a hidden alias only
    assert seen["--thumbprint"] == {"SHA1"}


def test_up_and_plan_take_thumbprint_and_up_documents_status_6(run_cli):
    for cmd in ("up", "plan"):
        r = run_cli(cmd, "--help")
        assert "--thumbprint SHA1" in r.out
    assert "6 a prerequisite is missing" in run_cli("up", "--help").out
    args = build_parser(["up"]).parse_args(["up", str(TRIO), "--thumbprint", "AA:BB"])
    assert args.thumbprint == "AA:BB"


def test_host_is_repeatable_and_hosts_still_works():
    parse = build_parser(["vib"]).parse_args
    base = ["vib", "deploy", "x.vib", "--lab", "lab.yaml"]
    assert parse(base + ["--host", "a", "--host", "b"]).host == ["a", "b"]
    assert parse(base + ["--hosts", "a,b"]).host == ["a", "b"]  # old scripts keep working
    assert build_parser(["macs"]).parse_args(["macs", "scan", "lab.yaml", "--host", "a,b"]).host == ["a", "b"]


def test_only_does_not_swallow_file(run_cli, tmp_path):
    sim = tmp_path / "sim"
    for argv in (["--only", "validate", "render", str(PAIR)], ["--only", "validate,render", str(PAIR)],
                 [str(PAIR), "--only", "validate", "render"]):
        r = run_cli("plan", *argv, "--sim", "--sim-dir", str(sim), "--json")
        assert r.status == 0, r.err
        assert [s["name"] for s in json.loads(r.out)["stages"]] == ["validate", "render"]
    r = run_cli("plan", str(PAIR), "--only", "mac")
    assert r.status == 2 and "invalid stage 'mac'" in r.err and "did you mean 'macs'?" in r.err
    r = run_cli("plan", "--only", "macs")
    assert r.status == 2 and "needs the topology FILE" in r.err


# ---- item 13: every command about a lab takes FILE the same way -------------------------------------------------
def _dev(tmp_path: Path, numbers=(0, 1, 8)) -> Path:
    import os
    import stat

    dev = tmp_path / "dev"
    dev.mkdir(parents=True)
    for n in numbers:
        p = dev / f"vmnet{n}"
        try:
            os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(119, n))
        except PermissionError:  # pragma: no cover - non-root developers
            p.write_text("")
        os.chmod(p, 0o666)
    return dev


def test_vmnet_check_takes_the_topology(run_cli, tmp_path):
    dev = _dev(tmp_path)
    r = run_cli("vmnet", "check", str(PAIR), "--dev-dir", str(dev), "--user", "root")
    assert r.status == 1, r.err  # esx35-ha-pair's storage network is vmnet2, which has no node here
    assert "vmnet2: missing, and network 'storage' of the lab uses vmnet2" in r.out
    (dev / "vmnet2").write_text("")
    doc = json.loads(run_cli("vmnet", "check", str(PAIR), "--dev-dir", str(dev), "--json").out)
    assert doc["lab"] == "esx35-ha-pair" and doc["lab_vmnets"] == [2]
    assert run_cli("vmnet", "check", "--dev-dir", str(_dev(tmp_path / "x"))).status == 0  # FILE stays optional


def test_prep_template_takes_file_then_host(run_cli, tmp_path):
    for argv in ((str(TRIO), "esxi-x"), ("esxi-x", "--lab", str(TRIO))):  # the new order, and the old one
        r = run_cli("prep-template", *argv, "--sim", "--sim-dir", str(tmp_path))
        assert r.status == 2 and "unknown host(s): esxi-x" in r.err, r.err


# ---- item 14: "no simulated lab" is one status everywhere ------------------------------------------------------
NO_LAB = [
    ("macs", "scan", str(TRIO)),
    ("macs", "fix", str(TRIO)),
    ("nfs", str(TRIO)),
    ("nfs", str(TRIO), "--via", "ssh"),
    ("vcenter", str(TRIO)),
    ("inventory", str(TRIO)),
    ("prep-template", str(TRIO), "esxi-a"),
    ("vib", "deploy", str(VIB), "--lab", str(TRIO)),
]
SIM_NO_LAB = [
    ("sim", "status", str(TRIO)),
    ("sim", "fault", str(TRIO), "esxi-a", "--clear"),
    ("sim", "exec", str(TRIO), "esxi-a", "true"),
]


@pytest.mark.parametrize("argv", NO_LAB + SIM_NO_LAB, ids=[" ".join(a[:2]) for a in NO_LAB + SIM_NO_LAB])
def test_no_simulated_lab_is_status_6_everywhere(argv, run_cli, tmp_path):
    if "deploy" in argv and not VIB.exists():
        pytest.skip("shared fixtures not present")
    sim = tmp_path / "nothing-here"
    extra = ("--sim-dir", str(sim)) if argv[0] == "sim" else ("--sim", "--sim-dir", str(sim))
    r = run_cli(*argv, *extra)
    assert r.status == 6, (r.status, r.err)
    assert "no simulated lab" in r.err and "labctl sim up" in r.err
    assert not sim.exists()  # asking created nothing


def test_the_readme_names_status_6_for_it():
    readme = (ROOT / "README.md").read_text()
    row = next(ln for ln in readme.splitlines() if ln.startswith("| 6 |"))
    assert "simulated lab" in row


# ---- item 17: colour on a terminal only; read-only commands say what they would do ------------------------------
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_tty(argv, environ=None, cwd=None):
    out, err = _Tty(), _Tty()
    status = main(list(argv), Env(stdout=out, stderr=err, stdin=io.StringIO(""), environ=dict(environ or {}),
                                  cwd=cwd or Path.cwd()))
    return status, out.getvalue(), err.getvalue()


def test_colour_on_a_terminal_for_errors_warnings_and_changes(tmp_path, run_cli):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lab: x\nesx_hosts: []\n")
    status, out, err = _run_tty(["validate", str(bad)])
    assert status == 2 and "\x1b[1;31m" in err  # an error, in red
    status, out, err = _run_tty(["validate", str(PAIR), "--sim"])
    assert status == 0 and "\x1b[33m" in err and "\x1b[32m" in out  # warnings yellow, ok green
    status, out, err = _run_tty(["plan", str(PAIR), "--sim", "--sim-dir", str(tmp_path / "s"), "--only", "render"])
    assert status == 0 and "\x1b[36m    ~ " in out  # a change plan would make


@pytest.mark.parametrize("how", ["NO_COLOR", "--no-color first", "--no-color last", "--json", "pipe"])
def test_no_colour_when_asked_or_not_a_terminal(how, tmp_path, run_cli):
    argv = ["validate", str(PAIR), "--sim"]
    environ = {}
    if how == "NO_COLOR":
        environ["NO_COLOR"] = "1"
    elif how == "--no-color first":
        argv = ["--no-color"] + argv
    elif how == "--no-color last":
        argv = argv + ["--no-color"]
    elif how == "--json":
        argv = argv + ["--json"]
    if how == "pipe":
        r = run_cli(*argv)
        status, out, err = r.status, r.out, r.err
    else:
        status, out, err = _run_tty(argv, environ)
    assert status == 0
    assert "\x1b[" not in out + err


def test_no_color_after_double_dash_is_not_ours():
    from labctl.cli import main as m

    env = Env(stdout=io.StringIO(), stderr=io.StringIO(), environ={})
    m.main(["sim", "exec", str(TRIO), "esxi-a", "--sim-dir", "/nonexistent/x", "--", "ls", "--no-color"], env)
    assert "NO_COLOR" not in env.environ


def test_down_and_destroy_of_a_lab_that_never_existed(run_cli, tmp_path):
    sim = tmp_path / "never"
    r = run_cli("down", str(PAIR), "--sim", "--sim-dir", str(sim))
    assert r.status == 0 and "nothing was running" in r.out
    assert not sim.exists()  # nothing created to find out that nothing runs
    r = run_cli("destroy", str(PAIR), "--sim", "--sim-dir", str(sim), "--yes")
    assert r.status == 0 and "removed" not in r.out + r.err and "nothing to delete" in r.out
    assert not sim.exists()


def test_read_only_commands_never_say_added_or_removed(run_cli, tmp_path):
    sim = tmp_path / "s"
    r = run_cli("plan", str(PAIR), "--sim", "--sim-dir", str(sim), "--only", "networks", "--json")
    assert r.status == 0, r.err
    summaries = [c["summary"] for c in json.loads(r.out)["changes"]]
    assert any(s.startswith("add LAN segment 'lan'") for s in summaries), summaries
    assert not any(w in s for s in summaries for w in ("added", "removed"))


# ---- item 11 on the command line: did you mean ---------------------------------------------------------------
def test_did_you_mean_for_commands_actions_and_hosts(run_cli, tmp_path):
    r = run_cli("vaildate", "x.yaml")
    assert r.status == 2 and "did you mean 'validate'?" in r.err
    r = run_cli("macs", "sacn", "x.yaml")
    assert r.status == 2 and "did you mean 'scan'?" in r.err
    r = run_cli("macs", "scan", str(TRIO), "--host", "esxi-d", "--sim", "--sim-dir", str(tmp_path))
    assert r.status == 2 and "unknown host(s): esxi-d" in r.err and "did you mean 'esxi-" in r.err



def _on_pty(argv: list[str], environ: dict[str, str]) -> tuple[int, str]:
    """Run argv with stdout and stderr on a pseudo-terminal (os.openpty); (status, what the terminal got)."""
    import os
    import subprocess

    master, slave = os.openpty()
    try:
        p = subprocess.run(argv, stdout=slave, stderr=slave, env=environ, timeout=60)
    finally:
        os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return p.returncode, b"".join(chunks).decode()


def test_colour_through_a_real_terminal_and_none_through_a_pipe(tmp_path):
    """The real program on a pseudo-terminal colours; into a pipe, or with NO_COLOR, it does not."""
    import os
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("lab: x\nesx_hosts:\n  - name: e\n    flavor: esxi\n   version: '8.0'\n")
    argv = [sys.executable, "-m", "labctl", "validate", str(bad)]
    environ = {**os.environ, "TERM": "xterm"}
    environ.pop("NO_COLOR", None)
    status, text = _on_pty(argv, environ)
    assert status == 2 and "\x1b[1;31m" in text and "wrong indentation" in text
    piped = subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=60)
    assert piped.returncode == 2 and "wrong indentation" in piped.stderr and "\x1b[" not in piped.stderr
    status, text = _on_pty(argv, {**environ, "NO_COLOR": "1"})
    assert status == 2 and "wrong indentation" in text and "\x1b[" not in text
