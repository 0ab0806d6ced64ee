"""Utilities over the simulated filesystem: cat, echo, printf, test/[, grep, sed, sleep, rm, touch, mkdir, ls, cp,
mv, head, tail, wc, md5sum/sha1sum/sha256sum, date.

ESXi has BusyBox; ESX classic's service console is Red Hat (3.5: RHEL 3, 4.x: RHEL 5.2) with GNU coreutils 4.5/5.x,
GNU sed and grep, whose error messages differ: `cat: X: No such file or directory` (BusyBox `cat: can't open 'X'`),
rm/touch/mkdir quote with `X' ("rm: cannot remove `X': ..."), `sed: can't read X`, `md5sum: X: ...`. The GNU texts
are coreutils' own (src/cat.c, remove.c, touch.c, mkdir.c at v4.5.3 and v5.92, lib/quote.c's locale quoting in the C
locale); docs/simulator.md lists the sources."""

from __future__ import annotations

import hashlib
import re
import time

from labctl.sim.commands import Invocation, Result, UsageFailure, command
from labctl.sim.fs import FsError, norm


def _p(inv: Invocation, path: str) -> str:
    return norm(path, inv.cwd)


def _gnu(inv: Invocation) -> bool:
    """True on ESX classic: GNU coreutils messages, not BusyBox ones."""
    return inv.state.is_classic


def _read_inputs(inv: Invocation, files: list[str], name: str) -> tuple[list[tuple[str, bytes]], str, int]:
    """(label, content) for each file or stdin, errors, status."""
    out, err, st = [], "", 0
    for f in files or ["-"]:
        if f == "-":
            out.append(("(standard input)", inv.stdin.read()))
            continue
        try:
            with inv.host.lock:
                out.append((f, inv.fs.read(_p(inv, f))))
        except FsError:
            err += (f"sed: can't read {f}: No such file or directory\n" if name == "sed" and _gnu(inv)
                    else f"{name}: {f}: No such file or directory\n")
            st = 2 if name == "grep" else 1
    return out, err, st


@command("cat", lock=False)
def cat(inv: Invocation) -> Result:
    files = [a for a in inv.args if a != "-u"]
    err, st = "", 0
    out = inv.io.out if inv.io is not None else None
    chunks: list[bytes] = []

    def emit(data: bytes) -> None:
        if out is not None:
            try:
                out.write(data)
            except BrokenPipeError:
                from labctl.sim.shell import JobKilled

                raise JobKilled("PIPE") from None
        else:
            chunks.append(data)

    for f in files or ["-"]:
        if f == "-":
            while True:
                data = inv.stdin.read(1 << 16)
                if not data:
                    break
                emit(data)
            continue
        try:
            with inv.host.lock:
                data = inv.fs.read(_p(inv, f))
        except FsError:
            if inv.fs.is_dir(_p(inv, f)):
                err += f"cat: {f}: Is a directory\n" if _gnu(inv) else "cat: read error: Is a directory\n"
            elif _gnu(inv):
                err += f"cat: {f}: No such file or directory\n"
            else:
                err += f"cat: can't open '{f}': No such file or directory\n"
            st = 1
            continue
        emit(data)
    return Result(st, b"".join(chunks), err)


_ESC = {"n": "\n", "t": "\t", "\\": "\\", "a": "\a", "r": "\r", "0": "\0", "e": "\x1b"}


def _unescape(s: str) -> tuple[str, bool]:
    out, i, stop = [], 0, False
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "c":
                stop = True
                break
            if n in _ESC:
                out.append(_ESC[n])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out), stop


@command("echo", lock=False)
def echo(inv: Invocation) -> Result:
    args = list(inv.args)
    newline, esc = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        flags = args.pop(0)
        newline = newline and "n" not in flags
        esc = ("e" in flags) or (esc and "E" not in flags)
    text = " ".join(args)
    if esc:
        text, stop = _unescape(text)
        if stop:
            newline = False
    return Result(0, text + ("\n" if newline else ""))


@command("printf", lock=False)
def printf(inv: Invocation) -> Result:
    if not inv.args:
        return Result(1, "", "printf: usage: printf FORMAT [ARGUMENT...]\n")
    fmt, args = inv.args[0], list(inv.args[1:])
    out: list[str] = []
    spec = re.compile(r"%([-+ 0#]*)(\d*)(?:\.(\d+))?([sdixXoc%b])")
    while True:
        used = 0

        def repl(m: re.Match[str], args: list[str] = args) -> str:
            nonlocal used
            conv = m.group(4)
            if conv == "%":
                return "%"
            a = args[used] if used < len(args) else ""
            used += 1
            flags, width, prec = m.group(1), m.group(2), m.group(3)
            pyfmt = "%" + flags + width + (f".{prec}" if prec else "")
            if conv in "dioxXc":
                try:
                    v = int(a, 0) if a else 0
                except ValueError:
                    raise UsageFailure(1, f"printf: invalid number '{a}'") from None
                return (pyfmt + ("d" if conv == "i" else conv)) % v
            if conv == "b":
                return _unescape(a)[0]
            return (pyfmt + "s") % a

        text = spec.sub(repl, fmt)
        out.append(_unescape(text)[0])
        args = args[used:]
        if not args or used == 0:
            break
    return Result(0, "".join(out))


def _test(inv: Invocation, a: list[str]) -> bool:
    def primary(a: list[str]) -> bool:
        if not a:
            return False
        if a[0] == "!":
            return not primary(a[1:])
        if len(a) == 1:
            return a[0] != ""
        if len(a) == 2:
            op, x = a
            with inv.host.lock:
                fs = inv.fs
                if op == "-f":
                    return fs.is_file(_p(inv, x))
                if op == "-d":
                    return fs.is_dir(_p(inv, x))
                if op in ("-e", "-r", "-w"):
                    return fs.exists(_p(inv, x))
                if op == "-s":
                    return fs.is_file(_p(inv, x)) and fs.size(_p(inv, x)) > 0
                if op == "-x":
                    return fs.is_file(_p(inv, x)) and "/bin/" in _p(inv, x)
            if op == "-z":
                return x == ""
            if op == "-n":
                return x != ""
            raise UsageFailure(2, f"sh: {op}: unknown operand")
        if len(a) == 3:
            x, op, y = a
            if op == "=" or op == "==":
                return x == y
            if op == "!=":
                return x != y
            ops = {"-eq": int.__eq__, "-ne": int.__ne__, "-lt": int.__lt__, "-gt": int.__gt__,
                   "-le": int.__le__, "-ge": int.__ge__}
            if op in ops:
                try:
                    return ops[op](int(x), int(y))
                except ValueError:
                    raise UsageFailure(2, "sh: bad number") from None
        raise UsageFailure(2, "sh: test: syntax error")

    for i, w in enumerate(a):
        if w == "-o" and 0 < i < len(a) - 1:
            return _test(inv, a[:i]) or _test(inv, a[i + 1:])
    for i, w in enumerate(a):
        if w == "-a" and 0 < i < len(a) - 1:
            return _test(inv, a[:i]) and _test(inv, a[i + 1:])
    return primary(a)


@command("test", lock=False)
def test_cmd(inv: Invocation) -> Result:
    return Result(0 if _test(inv, list(inv.args)) else 1)


@command("[", lock=False)
def bracket(inv: Invocation) -> Result:
    if not inv.args or inv.args[-1] != "]":
        return Result(2, "", "sh: [: missing ]\n")
    return Result(0 if _test(inv, list(inv.args[:-1])) else 1)


_POSIX_CLASSES = {"space": r"\s", "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
                  "lower": "a-z", "blank": r" \t", "xdigit": "0-9A-Fa-f", "punct": r"!-/:-@\[-`{-~"}


def _bracket(pattern: str, i: int) -> tuple[str, int]:
    """A bracket expression at pattern[i] == "[": its Python form (POSIX classes such as [:space:] expanded)
    and the index after it."""
    j = i + 1
    out = ["["]
    if j < len(pattern) and pattern[j] == "^":
        out.append("^")
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        out.append("\\]")
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        if pattern.startswith("[:", j):
            k = pattern.find(":]", j + 2)
            name = pattern[j + 2:k] if k > 0 else ""
            if name not in _POSIX_CLASSES:
                raise UsageFailure(1, f"sed: character class [:{name}:] is not modelled by the simulator")
            out.append(_POSIX_CLASSES[name])
            j = k + 2
            continue
        out.append("\\\\" if pattern[j] == "\\" else pattern[j])
        j += 1
    if j >= len(pattern):
        raise UsageFailure(1, "sed: unterminated [ in a regular expression")
    return "".join(out) + "]", j + 1


def bre_to_python(pattern: str, extended: bool = False) -> str:
    """POSIX basic (or extended) regular expression -> Python re syntax."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            text, i = _bracket(pattern, i)
            out.append(text)
            continue
        if extended:
            out.append(c)
            i += 1
            continue
        if c == "\\" and i + 1 < len(pattern):
            n = pattern[i + 1]
            out.append(n if n in "(){}|+?" else "\\" + n)
            i += 2
            continue
        if c in "(){}|+?":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


@command("grep", lock=False)
@command("egrep", lock=False)
def grep(inv: Invocation) -> Result:
    args = list(inv.args)
    flags: set[str] = set("E" if inv.path[0] == "egrep" else "")
    patterns: list[str] = []
    files: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-e" and i + 1 < len(args):
            patterns.append(args[i + 1])
            i += 2
            continue
        if a.startswith("-") and len(a) > 1 and not files and a != "-":
            for ch in a[1:]:
                if ch not in "qviEFwxncls":
                    return Result(2, "", f"grep: invalid option -- '{ch}'\n")
                flags.add(ch)
            i += 1
            continue
        if not patterns and "e" not in flags:
            patterns.append(a)
        else:
            files.append(a)
        i += 1
    if not patterns:
        return Result(2, "", "Usage: grep [-HhnlLoqvsriwFE] [-m N] [-A|B|C N] { PATTERN | -e PATTERN... } [FILE]...\n")
    rx = []
    for p in patterns:
        src = re.escape(p) if "F" in flags else bre_to_python(p, "E" in flags)
        if "w" in flags:
            src = rf"\b(?:{src})\b"
        if "x" in flags:
            src = rf"^(?:{src})$"
        try:
            rx.append(re.compile(src, re.I if "i" in flags else 0))
        except re.error as e:
            return Result(2, "", f"grep: bad regex '{p}': {e}\n")
    inputs, err, st = _read_inputs(inv, files, "grep")
    if "s" in flags:
        err = ""
    out: list[str] = []
    found = False
    multi = len(inputs) > 1
    for label, data in inputs:
        count = 0
        for n, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
            hit = any(r.search(line) for r in rx)
            if hit != ("v" in flags):
                count += 1
                found = True
                if "q" in flags:
                    return Result(0)
                if "c" not in flags and "l" not in flags:
                    prefix = (f"{label}:" if multi else "") + (f"{n}:" if "n" in flags else "")
                    out.append(prefix + line + "\n")
        if "c" in flags:
            out.append((f"{label}:" if multi else "") + f"{count}\n")
        if "l" in flags and count:
            out.append(label + "\n")
    if st:
        return Result(st, "".join(out), err)
    return Result(0 if found else 1, "".join(out), err)


def _sed_script(script: str) -> list[tuple]:
    """Parse the sed forms we model: `[addr]s<d>re<d>rep<d>[gI]`, `[addr]d`; addr is /re/, N or $.

    Commands are separated by `;` or newlines outside the s command's delimited fields."""
    cmds: list[tuple] = []
    i, n = 0, len(script)

    def unsupported(at: int) -> UsageFailure:
        return UsageFailure(1, f"sed: unsupported command {script[at:].strip()} (not modelled by the simulator)")

    while i < n:
        while i < n and script[i] in " \t;\n":
            i += 1
        if i >= n:
            break
        start = i
        addr: tuple | None = None
        if script[i] == "/":
            j = i + 1
            while j < n and script[j] != "/":
                j += 2 if script[j] == "\\" else 1
            if j >= n:
                raise UsageFailure(1, "sed: unterminated address regex")
            addr = ("re", re.compile(bre_to_python(script[i + 1:j])))
            i = j + 1
        else:
            m = re.match(r"\d+|\$", script[i:])
            if m:
                addr = ("line", m.group(0))
                i += m.end()
        while i < n and script[i] == " ":
            i += 1
        if i >= n:
            raise unsupported(start)
        c = script[i]
        if c == "d":
            cmds.append(("d", addr))
            i += 1
        elif c == "s" and i + 1 < n:
            d = script[i + 1]
            fields, cur, j = [], [], i + 2
            while j < n and len(fields) < 2:
                ch = script[j]
                if ch == "\\" and j + 1 < n:
                    cur.append(script[j:j + 2] if script[j + 1] != d else d)
                    j += 2
                    continue
                if ch == d:
                    fields.append("".join(cur))
                    cur = []
                else:
                    cur.append(ch)
                j += 1
            if len(fields) != 2:
                raise UsageFailure(1, "sed: unterminated `s' command")
            m = re.match(r"[gI]*", script[j:])
            flags = m.group(0) if m else ""
            i = j + len(flags)
            rx = re.compile(bre_to_python(fields[0]), re.I if "I" in flags else 0)
            rep = re.sub(r"\\(\d)", r"\\g<\1>", fields[1].replace("\\&", "\x00")).replace("&", r"\g<0>")
            rep = rep.replace("\x00", "&")
            cmds.append(("s", addr, rx, rep, "g" in flags))
        else:
            raise unsupported(start)
        while i < n and script[i] == " ":
            i += 1
        if i < n and script[i] not in ";\n":
            raise unsupported(start)
    return cmds


def _sed_apply(cmds: list[tuple], text: str, quiet: bool) -> str:
    lines = text.split("\n")
    trailing = text.endswith("\n")
    if trailing:
        lines = lines[:-1]
    out: list[str] = []
    last = len(lines)
    for n, line in enumerate(lines, 1):
        deleted = False
        for c in cmds:
            addr = c[1]
            if addr is not None:
                if addr[0] == "re" and not addr[1].search(line):
                    continue
                if addr[0] == "line" and not ((addr[1] == "$" and n == last) or (addr[1] != "$" and int(addr[1]) == n)):
                    continue
            if c[0] == "d":
                deleted = True
                break
            _, _, rx, rep, glob = c
            line = rx.sub(rep, line, count=0 if glob else 1)
        if not deleted and not quiet:
            out.append(line)
    return "\n".join(out) + ("\n" if (trailing and out) else "")


@command("sed")
def sed(inv: Invocation) -> Result:
    args = list(inv.args)
    in_place, quiet = False, False
    scripts: list[str] = []
    files: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-i":
            in_place = True
        elif a == "-n":
            quiet = True
        elif a == "-e" and i + 1 < len(args):
            scripts.append(args[i + 1])
            i += 1
        elif a in ("-r", "-E"):
            return Result(1, "", "sed: -r/-E is not modelled by the simulator\n")
        elif a.startswith("-") and a != "-":
            return Result(1, "", f"sed: invalid option -- '{a[1:]}'\n")
        elif not scripts:
            scripts.append(a)
        else:
            files.append(a)
        i += 1
    if not scripts:
        return Result(1, "", "Usage: sed [-inrE] [-f FILE]... [-e CMD]... [FILE]...\n")
    cmds = _sed_script("\n".join(scripts))
    if in_place:
        if not files:
            return Result(1, "", "sed: no files given for -i\n")
        for f in files:
            p = _p(inv, f)
            if not inv.fs.is_file(p):
                return Result(1, "", f"sed: can't read {f}: No such file or directory\n" if _gnu(inv)
                              else f"sed: can't open '{f}': No such file or directory\n")
            inv.fs.write(p, _sed_apply(cmds, inv.fs.read_text(p), quiet))
        return Result(0)
    inputs, err, st = _read_inputs(inv, files, "sed")
    out = "".join(_sed_apply(cmds, d.decode("utf-8", "surrogateescape"), quiet) for _, d in inputs)
    return Result(st, out, err)


@command("sleep", lock=False)
def sleep(inv: Invocation) -> Result:
    if len(inv.args) != 1:
        return Result(1, "", "Usage: sleep [N]...\n")
    try:
        secs = float(inv.args[0])
    except ValueError:
        return Result(1, "", f"sleep: invalid number '{inv.args[0]}'\n")
    if not inv.job.sleep(secs):
        from labctl.sim.shell import JobKilled

        raise JobKilled(inv.job.signal or "KILL")
    return Result(0)


@command("rm")
def rm(inv: Invocation) -> Result:
    force = any(a.startswith("-") and "f" in a for a in inv.args)
    recursive = any(a.startswith("-") and ("r" in a or "R" in a) for a in inv.args)
    err, st = "", 0
    for f in [a for a in inv.args if not a.startswith("-")]:
        p = _p(inv, f)
        try:
            if recursive and inv.fs.is_dir(p):
                for q in [x for x in (*inv.fs.state.files, *inv.fs.state.blobs) if x.startswith(p.rstrip("/") + "/")]:
                    inv.fs.remove(q)
                inv.fs.state.dirs[:] = [d for d in inv.fs.state.dirs if d != p and not d.startswith(p + "/")]
                continue
            inv.fs.remove(p)
        except FsError as e:
            if force and "No such file" in str(e):
                continue
            if _gnu(inv):
                err += (f"rm: cannot remove directory `{f}': Is a directory\n" if inv.fs.is_dir(p)
                        else f"rm: cannot remove `{f}': No such file or directory\n")
            else:
                err += f"rm: {e}\n"
            st = 1
    return Result(st, "", err)


@command("chmod")
def chmod(inv: Invocation) -> Result:
    """`chmod MODE FILE...`: the simulated filesystem keeps no modes; the files must exist, as for real."""
    args = [a for a in inv.args if a != "-R"]
    if len(args) < 2:
        return Result(1, "", "chmod: missing operand\n")
    mode, files = args[0], args[1:]
    import re as _re

    if not _re.fullmatch(r"[0-7]{3,4}|[ugoa]*[-+=][rwxXst]*(,[ugoa]*[-+=][rwxXst]*)*", mode):
        return Result(1, "", f"chmod: invalid mode: '{mode}'\n")
    err = ""
    for f in files:
        p = _p(inv, f)
        if not (inv.fs.is_file(p) or inv.fs.is_dir(p)):
            err += (f"chmod: cannot access '{f}': No such file or directory\n" if _gnu(inv)
                    else f"chmod: {f}: No such file or directory\n")
    return Result(1 if err else 0, "", err)


@command("touch")
def touch(inv: Invocation) -> Result:
    for f in inv.args:
        p = _p(inv, f)
        if not inv.fs.is_file(p):
            try:
                inv.fs.write(p, b"")
            except FsError:
                return Result(1, "", f"touch: cannot touch `{f}': No such file or directory\n" if _gnu(inv)
                              else f"touch: {f}: No such file or directory\n")
    return Result(0)


@command("mkdir")
def mkdir(inv: Invocation) -> Result:
    parents = "-p" in inv.args
    for f in [a for a in inv.args if not a.startswith("-")]:
        try:
            inv.fs.mkdir(_p(inv, f), parents=parents)
        except FsError as e:
            if _gnu(inv):
                why = "File exists" if "exists" in str(e) else "No such file or directory"
                return Result(1, "", f"mkdir: cannot create directory `{f}': {why}\n")
            return Result(1, "", f"mkdir: {e}\n")
    return Result(0)


@command("ls")
def ls(inv: Invocation) -> Result:
    long = any(a.startswith("-") and "l" in a for a in inv.args)
    targets = [a for a in inv.args if not a.startswith("-")] or [inv.cwd]
    out, err, st = [], "", 0
    for t in targets:
        p = _p(inv, t)
        if inv.fs.is_file(p):
            names = [(t, p)]
        elif inv.fs.is_dir(p):
            names = [(n, p.rstrip("/") + "/" + n) for n in inv.fs.listdir(p)]
        else:
            err += f"ls: {t}: No such file or directory\n"
            st = 1
            continue
        for n, full in names:
            if long:
                if inv.fs.is_dir(full):
                    out.append(f"drwxr-xr-x    1 root     root           512 Jan  1 00:00 {n}\n")
                else:
                    out.append(f"-rw-r--r--    1 root     root    {inv.fs.size(full):>10} Jan  1 00:00 {n}\n")
            else:
                out.append(n + "\n")
    return Result(st, "".join(out), err)


@command("cp")
def cp(inv: Invocation) -> Result:
    files = [a for a in inv.args if not a.startswith("-")]
    if len(files) != 2:
        return Result(1, "", "cp: only `cp SRC DST` is modelled by the simulator\n")
    src, dst = _p(inv, files[0]), _p(inv, files[1])
    if inv.fs.is_dir(dst):
        dst = dst.rstrip("/") + "/" + src.rsplit("/", 1)[1]
    try:
        inv.fs.write(dst, inv.fs.read(src))
    except FsError as e:
        return Result(1, "", f"cp: {e}\n")
    return Result(0)


@command("mv")
def mv(inv: Invocation) -> Result:
    files = [a for a in inv.args if not a.startswith("-")]
    if len(files) != 2:
        return Result(1, "", "mv: only `mv SRC DST` is modelled by the simulator\n")
    src, dst = _p(inv, files[0]), _p(inv, files[1])
    if inv.fs.is_dir(dst):
        dst = dst.rstrip("/") + "/" + src.rsplit("/", 1)[1]
    try:
        inv.fs.rename(src, dst)
    except FsError as e:
        return Result(1, "", f"mv: {e}\n")
    return Result(0)


def _count_arg(args: list[str], default: int = 10) -> tuple[int, list[str]]:
    n, rest, i = default, [], 0
    while i < len(args):
        a = args[i]
        if a == "-n" and i + 1 < len(args):
            n = int(args[i + 1].lstrip("+"))
            i += 2
            continue
        if re.fullmatch(r"-n?\d+", a):
            n = int(a.lstrip("-n"))
        else:
            rest.append(a)
        i += 1
    return n, rest


@command("head", lock=False)
def head(inv: Invocation) -> Result:
    n, files = _count_arg(list(inv.args))
    inputs, err, st = _read_inputs(inv, files, "head")
    out = "".join("".join(d.decode("utf-8", "surrogateescape").splitlines(True)[:n]) for _, d in inputs)
    return Result(st, out, err)


@command("tail", lock=False)
def tail(inv: Invocation) -> Result:
    n, files = _count_arg(list(inv.args))
    inputs, err, st = _read_inputs(inv, files, "tail")
    out = "".join("".join(d.decode("utf-8", "surrogateescape").splitlines(True)[-n:] if n else []) for _, d in inputs)
    return Result(st, out, err)


@command("wc", lock=False)
def wc(inv: Invocation) -> Result:
    opts = "".join(a[1:] for a in inv.args if a.startswith("-")) or "lwc"
    files = [a for a in inv.args if not a.startswith("-")]
    inputs, err, st = _read_inputs(inv, files, "wc")
    out = []
    for label, d in inputs:
        parts = []
        if "l" in opts:
            parts.append(d.count(b"\n"))
        if "w" in opts:
            parts.append(len(d.split()))
        if "c" in opts:
            parts.append(len(d))
        cells = " ".join(f"{p:>9}" if len(parts) > 1 else str(p) for p in parts)
        out.append(cells + (f" {label}" if files else "") + "\n")
    return Result(st, "".join(out), err)


def _digest(algo: str):
    def handler(inv: Invocation) -> Result:
        files = [a for a in inv.args if not a.startswith("-")]
        out, err, st = [], "", 0
        for f in files or ["-"]:
            h = hashlib.new(algo)
            if f == "-":
                h.update(inv.stdin.read())
            else:
                p = _p(inv, f)
                try:
                    with inv.host.lock:
                        if p in inv.fs.state.blobs:
                            with open(inv.fs.blob_path(p), "rb") as fh:
                                for chunk in iter(lambda: fh.read(1 << 20), b""):
                                    h.update(chunk)
                        else:
                            h.update(inv.fs.read(p))
                except FsError:
                    err += (f"{algo}sum: {f}: No such file or directory\n" if _gnu(inv)
                            else f"{algo}sum: can't open '{f}': No such file or directory\n")
                    st = 1
                    continue
            out.append(f"{h.hexdigest()}  {f}\n")
        return Result(st, "".join(out), err)

    return handler


for _algo in ("md5", "sha1", "sha256"):
    command(f"{_algo}sum", lock=False)(_digest(_algo))


@command("date", lock=False)
def date(inv: Invocation) -> Result:
    if inv.args == ["+%s"]:
        return Result(0, f"{int(time.time())}\n")
    if inv.args:
        return Result(1, "", "date: only `date` and `date +%s` are modelled by the simulator\n")
    return Result(0, time.strftime("%a %b %e %H:%M:%S UTC %Y\n", time.gmtime()))


def _readline(stdin) -> bytes | None:
    buf = bytearray()
    while True:
        b = stdin.read(1)
        if not b:
            return bytes(buf) if buf else None
        if b == b"\n":
            return bytes(buf)
        buf += b


def _read_exact(stdin, n: int) -> bytes:
    chunks, left = [], n
    while left > 0:
        data = stdin.read(min(left, 1 << 16))
        if not data:
            break
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)


@command("scp", lock=False)
def scp(inv: Invocation) -> Result:
    """The remote end of legacy scp (`scp -O`): `scp -t TARGET` receives, `scp -f PATH` sends (one file or -r)."""
    args = [a for a in inv.args if a not in ("-v", "-p", "-d", "-q")]
    recursive = "-r" in args
    args = [a for a in args if a != "-r"]
    if len(args) != 2 or args[0] not in ("-t", "-f"):
        return Result(1, "", "usage: scp [-r] -t|-f PATH (the remote end of scp; run scp on your machine)\n")
    out, stdin = inv.io.out, inv.stdin

    def send(data: bytes) -> None:
        try:
            out.write(data)
        except BrokenPipeError:
            from labctl.sim.shell import JobKilled

            raise JobKilled("PIPE") from None

    target = _p(inv, args[1])
    if args[0] == "-f":
        if stdin.read(1) != b"\0":
            return Result(1)
        with inv.host.lock:
            if not inv.fs.is_file(target):
                send(b"\x01scp: " + args[1].encode() + b": No such file or directory\n")
                return Result(1)
            data = inv.fs.read(target)
        send(f"C0644 {len(data)} {target.rsplit('/', 1)[-1]}\n".encode())
        if stdin.read(1) != b"\0":
            return Result(1)
        send(data + b"\0")
        stdin.read(1)
        return Result(0)
    dirs = [target]
    send(b"\0")
    while True:
        line = _readline(stdin)
        if line is None:
            return Result(0)
        kind, rest = line[:1], line[1:].decode("utf-8", "surrogateescape")
        if kind == b"T":
            send(b"\0")
            continue
        if kind == b"E":
            if len(dirs) > 1:
                dirs.pop()
            send(b"\0")
            continue
        parts = rest.split(" ", 2)
        if kind not in (b"C", b"D") or len(parts) != 3:
            send(b"\x01scp: protocol error\n")
            return Result(1)
        _, size, name = parts
        with inv.host.lock:
            base = dirs[-1]
            path = f"{base.rstrip('/')}/{name}" if inv.fs.is_dir(base) else base
        if kind == b"D":
            if not recursive:
                send(b"\x01scp: received directory without -r\n")
                return Result(1)
            with inv.host.lock:
                if not inv.fs.is_dir(path):
                    inv.fs.mkdir(path, parents=True)
            dirs.append(path)
            send(b"\0")
            continue
        send(b"\0")
        data = _read_exact(stdin, int(size))
        stdin.read(1)
        try:
            with inv.host.lock:
                inv.fs.write(path, data)
                inv.host.save()
        except FsError as e:
            send(b"\x01scp: " + str(e).encode() + b"\n")
            return Result(1)
        send(b"\0")
