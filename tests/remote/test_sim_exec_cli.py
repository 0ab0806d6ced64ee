"""`labctl sim exec FILE HOST …` (issue 12, item 7): labctl's options work after FILE and HOST, and the remote command
is only the single quoted argument or the words after `--` — never an option meant for labctl."""

from __future__ import annotations

from tests.remote.conftest import SEED


def _exec(lab, *argv):
    return lab.labctl("sim", "exec", str(SEED), *argv)


def test_options_after_file_and_host_are_labctls_and_the_command_is_only_what_follows_dashdash(sim_lab, tmp_path):
    lab = sim_lab(SEED)
    d = str(lab.sim_dir)
    # --sim-dir after the quoted command: it picks the lab (the default one does not exist here)
    r = _exec(lab, "esx2", "echo one; echo two", "--sim-dir", d)
    assert (r.status, r.out) == (0, "one\ntwo\n"), r.err
    # after `--` every word is one argument, quoted for the remote shell: nothing is expanded or split again
    r = _exec(lab, "esx2", "--sim-dir", d, "--", "echo", "a  b", "$(reboot)", "--sim-dir", "X")
    assert (r.status, r.out) == (0, "a  b $(reboot) --sim-dir X\n"), r.err
    # a quoted line is the host shell's: its exit status passes through
    r = _exec(lab, "esx2", "--sim-dir", d, "exit 7")
    assert r.status == 7
    # the default lab is not used when --sim-dir is given, wherever it stands
    other = tmp_path / "no-lab"
    r = _exec(lab, "esx2", "vmware -v", "--sim-dir", str(other))
    assert r.status != 0 and str(other) in r.err and r.out == ""


def test_several_words_without_dashdash_or_two_commands_are_refused(sim_lab):
    lab = sim_lab(SEED)
    d = str(lab.sim_dir)
    before = lab.counters("esx2")["execs"]
    for argv in (["esx2", "--sim-dir", d, "vmware", "-v"], ["esx2", "--sim-dir", d, "vmware", "version"],
                 ["esx2", "--sim-dir", d, "vmware -v", "--", "hostname"], ["esx2", "--sim-dir", d]):
        r = _exec(lab, *argv)
        assert r.status == 2, (argv, r.out, r.err)
        assert r.out == ""
    assert "a command of several words goes after `--`" in _exec(lab, "esx2", "--sim-dir", d, "a", "b").err
    assert lab.counters("esx2")["execs"] == before, "a refused command line never reaches the host"
