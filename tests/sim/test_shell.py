"""The shell grammar and the file utilities, run on a local simulated host (no SSH)."""

from __future__ import annotations

import time

import pytest

from labctl.sim.shell import ShellSyntaxError, parse

from .helpers import local_host, wait_for


@pytest.fixture
def host():
    return local_host("esxi", "6.7")


@pytest.mark.parametrize("cmd,code,out,err", [
    ("echo a; echo b", 0, "a\nb\n", ""),
    ("true && echo yes || echo no", 0, "yes\n", ""),
    ("false && echo yes || echo no", 0, "no\n", ""),
    ("false; echo $?", 0, "1\n", ""),
    ("! false && echo negated", 0, "negated\n", ""),
    ("echo 'single $HOME \"q\"'", 0, "single $HOME \"q\"\n", ""),
    ('X=1; echo "double $X \\$X \\"q\\""', 0, "double 1 $X \"q\"\n", ""),
    ("echo a\\ b c\\;d", 0, "a b c;d\n", ""),
    ("A='x  y'; echo $A; echo \"$A\"", 0, "x y\nx  y\n", ""),
    ("echo ${UNSET:-dflt} ${UNSET-d2} x${EMPTY}y", 0, "dflt d2 xy\n", ""),
    ("echo $(echo inner) `echo back`", 0, "inner back\n", ""),
    ("echo one\necho two # comment", 0, "one\ntwo\n", ""),
    ("if [ -f /etc/vmware/esx.conf ]; then echo yes; elif true; then echo elif; else echo no; fi", 0, "yes\n", ""),
    ("for m in a b; do echo $m; done", 0, "a\nb\n", ""),
    ("i=x; while [ $i != xxx ]; do i=${i}x; done; echo $i", 0, "xxx\n", ""),
    ("{ echo g1; echo g2; } > /tmp/g; cat /tmp/g", 0, "g1\ng2\n", ""),
    ("(exit 3); echo $?", 0, "3\n", ""),
    ("sh -c 'echo $0 $1' name arg", 0, "name arg\n", ""),
    ("sh -c 'exit 7'", 7, "", ""),
    ("exit 4; echo never", 4, "", ""),
    ("nosuchcmd --x", 127, "", "sh: nosuchcmd: not found\n"),
    ("/sbin/nosuch", 127, "", "sh: /sbin/nosuch: not found\n"),
    ("echo x | grep -c x", 0, "1\n", ""),
    ("cat /etc/vmware/esx.conf | grep -q /system/uuid && echo has", 0, "has\n", ""),
    ("echo err >&2", 0, "", "err\n"),
    ("nosuch 2>&1", 127, "sh: nosuch: not found\n", ""),
    ("nosuch 2>/dev/null; echo $?", 0, "127\n", ""),
    ("echo a > /tmp/f; echo b >> /tmp/f; cat < /tmp/f", 0, "a\nb\n", ""),
    ("cat < /tmp/missing", 1, "", "sh: can't open '/tmp/missing': No such file or directory\n"),
    ("echo x > /nodir/f", 1, "", "sh: can't create /nodir/f: nonexistent directory\n"),
    ("echo 'unterminated", 2, "", "sh: unterminated quoted string\n"),
    ("echo $((1+1))", 2, "", "sh: arithmetic expansion is not modelled by the simulator\n"),
    ("printf '%s-%d\\n' a 1 b 2", 0, "a-1\nb-2\n", ""),
    ("echo -n a; echo b", 0, "ab\n", ""),
    ("[ 3 -gt 2 -a abc = abc ] && echo ok", 0, "ok\n", ""),
    ("test -z '' && test -n x && echo ok", 0, "ok\n", ""),
])
def test_grammar(host, cmd, code, out, err):
    assert host.run(cmd) == (code, out, err)


def test_syntax_errors_raise():
    for bad in ("echo a &&", "if true; then echo", "( echo", "| x", "cat <<", "cat <<'EOF"):
        with pytest.raises(ShellSyntaxError):
            parse(bad)


def test_here_documents(host):
    """`<<'EOF'` literal, `<<EOF` expanded like "...", `<<-` strips leading tabs, two on one line in order; an
    unterminated one ends at the end of the script (as ash and bash do)."""
    script = ("X=world\ncat > /tmp/a <<'EOF'\n$X \"q\" \\$X\nEOF\ncat <<EOF >> /tmp/a\n$X \"q\" \\$X $(echo sub)\nEOF\n"
              "cat <<-END\n\tindented\n\tEND\ncat <<A; cat <<B\none\nA\ntwo\nB\ncat <<EOF\nlast")
    code, out, err = host.run(script + "\n")
    assert (code, err) == (0, "") and out == "indented\none\ntwo\nlast\n"
    assert host.fs.read("/tmp/a").decode() == '$X "q" \\$X\nworld "q" $X sub\n'


def test_background_job_keeps_running_after_the_command_returns(host):
    t0 = time.monotonic()
    code, out, err = host.run("nohup sh -c 'sleep 1; echo done > /tmp/bg' </dev/null >/tmp/bg.log 2>&1 &")
    assert (code, out, err) == (0, "", "")
    assert time.monotonic() - t0 < 0.8
    assert not host.fs.is_file("/tmp/bg")
    assert wait_for(lambda: host.fs.is_file("/tmp/bg"))
    assert host.fs.read_text("/tmp/bg") == "done\n"


def test_wait_builtin(host):
    assert host.run("sh -c 'sleep 0.05; echo late' > /tmp/w & wait; cat /tmp/w") == (0, "late\n", "")


def test_grep_forms(host):
    host.fs.write("/tmp/t", "alpha 1\nbeta 2\nAlpha 3\n")
    assert host.run("grep alpha /tmp/t") == (0, "alpha 1\n", "")
    assert host.run("grep -i alpha /tmp/t") == (0, "alpha 1\nAlpha 3\n", "")
    assert host.run("grep -v alpha /tmp/t")[1] == "beta 2\nAlpha 3\n"
    assert host.run("grep -c a /tmp/t") == (0, "3\n", "")
    assert host.run("grep 'a\\(lp\\)h' /tmp/t") == (0, "alpha 1\n", "")
    assert host.run("grep -E 'be(ta)+' /tmp/t") == (0, "beta 2\n", "")
    assert host.run("grep zzz /tmp/t") == (1, "", "")
    assert host.run("grep x /tmp/none")[0] == 2


def test_sed_in_place_forms(host):
    host.run("echo 'MACADDR=00:50:56:4a:00:01' > /tmp/i; echo 'IPADDR=1.2.3.4' >> /tmp/i")
    assert host.run("sed -i 's#^MACADDR=.*#MACADDR=00:50:56:01:02:03#' /tmp/i") == (0, "", "")
    assert host.fs.read_text("/tmp/i") == "MACADDR=00:50:56:01:02:03\nIPADDR=1.2.3.4\n"
    assert host.run("sed -i '/^IPADDR/d' /tmp/i") == (0, "", "")
    assert host.fs.read_text("/tmp/i") == "MACADDR=00:50:56:01:02:03\n"
    assert host.run("echo aaa | sed 's/a/b/g'") == (0, "bbb\n", "")
    assert host.run("echo abc | sed 's/\\(b\\)/[\\1]/'") == (0, "a[b]c\n", "")
    assert host.run("sed -i 's/x/y/' /tmp/none")[0] == 1
    code, _, err = host.run("sed -i 'y/abc/xyz/' /tmp/i")
    assert code == 1 and "not modelled" in err


def test_uuid_clear_the_documented_way(host):
    code, _, _ = host.run("sed -i 's#/system/uuid.*##' /etc/vmware/esx.conf")
    assert code == 0
    assert host.run("grep -c /system/uuid /etc/vmware/esx.conf") == (1, "0\n", "")


def test_cat_stdin_to_file(host):
    data = bytes(range(256)) * 10
    code, out, err = host.run("cat > /tmp/blob.bin", stdin=data)
    assert (code, out, err) == (0, "", "")
    assert host.fs.read("/tmp/blob.bin") == data


def test_file_utilities(host):
    assert host.run("mkdir -p /tmp/a/b && touch /tmp/a/b/f && ls /tmp/a/b") == (0, "f\n", "")
    assert host.run("cp /tmp/a/b/f /tmp/g && mv /tmp/g /tmp/h && ls /tmp/h && rm /tmp/h")[0] == 0
    assert host.run("rm /tmp/h")[0] == 1
    assert host.run("rm -f /tmp/h")[0] == 0
    assert host.run("printf 'a\\nb\\nc\\n' | head -n 2") == (0, "a\nb\n", "")
    assert host.run("printf 'a\\nb\\nc\\n' | tail -1") == (0, "c\n", "")
    assert host.run("printf 'a\\nb\\n' | wc -l") == (0, "2\n", "")
    assert host.run("echo -n abc | sha256sum")[1].startswith(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


TRICKY = ["plain", "two words", "it's", 'say "hi"', "back\\slash", "$HOME `x` $(y)", "semi;colon && amp | pipe",
          "tab\there", "new\nline", "*glob?[x]", "", "-n", "Management Network", "#hash"]


@pytest.mark.parametrize("text", TRICKY)
def test_shlex_quoted_words_arrive_unchanged(host, text):
    import shlex

    assert host.run(f"printf '%s\\n' {shlex.quote(text)}") == (0, text + "\n", "")
    inner = "printf '%s\\n' " + shlex.quote(text)
    nested = "sh -c " + shlex.quote(inner)
    assert host.run(nested) == (0, text + "\n", "")


def test_pathname_expansion(host):
    host.run("touch /tmp/a.log /tmp/b.log /tmp/c.txt")
    assert host.run("echo /tmp/*.log") == (0, "/tmp/a.log /tmp/b.log\n", "")
    assert host.run("cd /tmp && echo ?.txt") == (0, "c.txt\n", "")
    assert host.run("echo '/tmp/*.log' /none/*") == (0, "/tmp/*.log /none/*\n", "")
    assert host.run("rm /tmp/*.log; ls /tmp") == (0, "c.txt\n", "")


def test_localcli_is_esxcli_without_hostd(host):
    assert host.run("localcli system uuid get") == host.run("esxcli system uuid get")


def test_random_command_lines_never_crash_the_interpreter(host):
    """Whatever arrives over SSH, the answer is a status and text, never a Python exception (fixed seed)."""
    import random

    toks = ["echo", "a", "'b c'", '"d $X"', "$(", ")", "`", "|", "&&", "||", ";", "&", ">", ">>", "<", "2>&1",
            "/tmp/f", "{", "}", "(", "if", "then", "fi", "for", "in", "do", "done", "${X:-y}", "$?", "\\", "*",
            "/etc/*", "cat", "grep", "-c", "sed", "'s/a/b/'", "sh", "-c", "X=1", "!", "\n", "esxcli", "network",
            "ip", "interface", "list", "true", "false", "exit", "[", "]", "-f", "=", '"', "'", "#", "printf", "%s"]
    rnd = random.Random(7)
    for _ in range(600):
        code, out, err = host.run(" ".join(rnd.choice(toks) for _ in range(rnd.randint(1, 8))))
        assert isinstance(code, int) and 0 <= code < 256


def test_sed_separators_inside_s_fields_and_multiple_commands(host):
    host.fs.write("/tmp/t", "exit 0\nabc\nIPADDR=1\n")
    assert host.run("sed 's#^exit 0#echo x; exit 0#' /tmp/t")[1] == "echo x; exit 0\nabc\nIPADDR=1\n"
    assert host.run("sed 's/a/b/g;s/c/d/' /tmp/t")[1] == "exit 0\nbbd\nIPADDR=1\n"
    assert host.run("sed -e '1d' -e '$d' /tmp/t")[1] == "abc\n"
    assert host.run("echo a/b | sed 's/\\//|/'")[1] == "a|b\n"
    assert host.run("sed 's/a/b/ junk' /tmp/t")[0] == 1
