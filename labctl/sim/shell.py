"""A small POSIX-sh (BusyBox ash flavoured) interpreter for the simulated hosts.

Grammar: lists with `;`, newlines, `&&`, `||`, `&`; pipelines `|` and `!`; `( ... )`, `{ ...; }`,
`if/then/elif/else/fi`, `while`/`until ... do ... done`, `for X in ...; do ... done`; simple commands with
assignments `A=b`, words with '...', "...", backslash escapes, `$VAR`, `${VAR}`, `${VAR:-x}`, `$?`, `$$`, `$!`,
`$#`, `$1..`, `$(...)` and backticks, pathname expansion (`*`, `?`, `[...]`) over the simulated filesystem;
redirections `[n]>`, `[n]>>`, `[n]<`, `[n]>&m`, `[n]<&m`. No here-documents, no arithmetic, no `case`: those fail
loudly.

Builtins: `exit`, `true`, `false`, `:`, `export`, `unset`, `cd`, `sh -c`, `nohup`, `wait`; everything else goes to
the command registry (`labctl.sim.commands`). An unknown command prints `sh: X: not found` and exits 127.

Jobs and hang-ups (a modelling choice, deliberately pessimistic — what a remote caller cannot rely on):
- When the SSH session of a command drops (its interface went away, reboot, fault), the session's foreground job
  gets SIGHUP: it stops before its next command unless it runs under `nohup`.
- `cmd &` runs as a background job with stdin from /dev/null. It survives the drop, but dies at its next write to
  the dropped session (SIGPIPE) unless stdout/stderr are redirected. While a background job still writes to the
  session's stdout/stderr the channel stays open (`ssh host 'sleep 10 &'` takes 10 s), as with OpenSSH.
- `reboot` kills every job of the host.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

# ---------------------------------------------------------------- errors and control flow


class ShellSyntaxError(Exception):
    pass


class JobKilled(Exception):
    """The job got a fatal signal (HUP, PIPE, KILL at reboot)."""

    def __init__(self, signal: str = "HUP"):
        super().__init__(signal)
        self.signal = signal


class ExitShell(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


SIGNAL_STATUS = {"HUP": 129, "KILL": 137, "PIPE": 141, "TERM": 143}

# ---------------------------------------------------------------- lexer

_OPS = ("&&", "||", ";;", ">>", ">&", "<&", "<<", ">|", ";", "&", "|", "(", ")", "<", ">")
_META = set(";&|<>()")
_RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "{", "}", "!", "case",
             "esac"}


@dataclass
class Tok:
    kind: str  # WORD | OP | IONUM | NL | EOF
    text: str


def _skip_paren(s: str, i: int) -> int:
    """s[i] is '(' of '$('; return the index after the matching ')'."""
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            j = s.find("'", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated quoted string")
            i = j + 1
            continue
        if c == '"':
            i = _skip_dquote(s, i) + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ShellSyntaxError("unexpected end of file (expecting \")\")")


def _skip_dquote(s: str, i: int) -> int:
    """s[i] is '"'; return the index of the closing quote."""
    j = i + 1
    n = len(s)
    while j < n:
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "$" and j + 1 < n and s[j + 1] == "(":
            j = _skip_paren(s, j + 1)
            continue
        if c == "`":
            k = s.find("`", j + 1)
            if k < 0:
                raise ShellSyntaxError("unterminated quoted string")
            j = k + 1
            continue
        if c == '"':
            return j
        j += 1
    raise ShellSyntaxError("unterminated quoted string")


def _heredoc_start(s: str, i: int, toks: list[Tok], pending: list[tuple[Tok, str, bool]]) -> int:
    """`<<WORD`, `<<'WORD'`, `<<-WORD`: the operator and a HEREDOC token whose body the next newline reads.
    A quoted delimiter means the body is taken literally; else it is expanded like a double-quoted string."""
    i += 2
    strip_tabs = i < len(s) and s[i] == "-"
    if strip_tabs:
        i += 1
    while i < len(s) and s[i] in " \t":
        i += 1
    start = i
    while i < len(s) and s[i] not in " \t\r\n" and s[i] not in _META:
        if s[i] in "'\"":
            j = s.find(s[i], i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated quoted string")
            i = j + 1
        else:
            i += 1
    raw = s[start:i]
    if not raw:
        raise ShellSyntaxError("syntax error: unexpected newline (a here-document needs a delimiter word)")
    quoted = any(q in raw for q in "'\"\\")
    delim = raw.replace("'", "").replace('"', "").replace("\\", "")
    tok = Tok("HEREDOCQ" if quoted else "HEREDOC", "")
    toks.append(Tok("OP", "<<"))
    toks.append(tok)
    pending.append((tok, ("-" if strip_tabs else "") + delim, quoted))
    return i


def _read_heredocs(s: str, i: int, pending: list[tuple[Tok, str, bool]]) -> int:
    """After a newline: the bodies of the here-documents opened on that line, in order (POSIX 2.7.4)."""
    while pending:
        tok, delim, _ = pending.pop(0)
        strip_tabs = delim.startswith("-")
        delim = delim[1:] if strip_tabs else delim
        body: list[str] = []
        while i < len(s):
            j = s.find("\n", i)
            line = s[i:] if j < 0 else s[i:j]
            i = len(s) if j < 0 else j + 1
            if strip_tabs:
                line = line.lstrip("\t")
            if line == delim:
                break
            body.append(line + "\n")
        tok.text = "".join(body)  # an unterminated one ends at the end of the input, as in ash and bash
    return i


def tokenize(s: str) -> list[Tok]:
    toks: list[Tok] = []
    pending: list[tuple[Tok, str, bool]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in " \t\r":
            i += 1
            continue
        if c == "\\" and i + 1 < n and s[i + 1] == "\n":
            i += 2
            continue
        if c == "\n":
            toks.append(Tok("NL", "\n"))
            i += 1
            i = _read_heredocs(s, i, pending)
            continue
        if c == "#":
            while i < n and s[i] != "\n":
                i += 1
            continue
        if c in _META:
            for op in _OPS:
                if s.startswith(op, i):
                    if op == "<<":
                        i = _heredoc_start(s, i, toks, pending)
                        break
                    if op == ";;":
                        raise ShellSyntaxError("syntax error: unexpected \";;\"")
                    toks.append(Tok("OP", ">" if op == ">|" else op))
                    i += len(op)
                    break
            continue
        start = i
        while i < n and s[i] not in " \t\r\n" and s[i] not in _META:
            c = s[i]
            if c == "\\":
                i += 2
            elif c == "'":
                j = s.find("'", i + 1)
                if j < 0:
                    raise ShellSyntaxError("unterminated quoted string")
                i = j + 1
            elif c == '"':
                i = _skip_dquote(s, i) + 1
            elif c == "$" and i + 1 < n and s[i + 1] == "(":
                i = _skip_paren(s, i + 1)
            elif c == "$" and i + 1 < n and s[i + 1] == "{":
                j = s.find("}", i)
                if j < 0:
                    raise ShellSyntaxError("bad substitution")
                i = j + 1
            elif c == "`":
                j = s.find("`", i + 1)
                if j < 0:
                    raise ShellSyntaxError("unterminated quoted string")
                i = j + 1
            else:
                i += 1
        word = s[start:min(i, n)]
        if word.isdigit() and i < n and s[i] in "<>":
            toks.append(Tok("IONUM", word))
        else:
            toks.append(Tok("WORD", word))
    toks.append(Tok("EOF", ""))
    return toks


# ---------------------------------------------------------------- AST


@dataclass
class Redir:
    fd: int
    op: str  # < > >> >& <&
    target: str  # raw word


@dataclass
class Simple:
    assigns: list[str]
    words: list[str]
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class Pipeline:
    cmds: list[Any]
    negate: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]] = field(default_factory=list)


@dataclass
class Seq:
    items: list[tuple[AndOr, bool]] = field(default_factory=list)  # (and_or, background)


@dataclass
class Subshell:
    body: Seq
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class Group:
    body: Seq
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class If:
    branches: list[tuple[Seq, Seq]]
    else_body: Seq | None
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class Loop:
    cond: Seq
    body: Seq
    until: bool
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class For:
    var: str
    words: list[str]
    body: Seq
    redirs: list[Redir] = field(default_factory=list)


_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class Parser:
    def __init__(self, text: str):
        self.toks = tokenize(text)
        self.pos = 0

    def peek(self) -> Tok:
        return self.toks[self.pos]

    def next(self) -> Tok:
        t = self.toks[self.pos]
        self.pos += 1
        return t

    def is_word(self, *texts: str) -> bool:
        t = self.peek()
        return t.kind == "WORD" and t.text in texts

    def expect_word(self, text: str) -> None:
        t = self.next()
        if not (t.kind == "WORD" and t.text == text):
            got = "end of file" if t.kind == "EOF" else repr(t.text)
            raise ShellSyntaxError(f"syntax error: unexpected {got} (expecting \"{text}\")")

    def linebreak(self) -> None:
        while self.peek().kind == "NL":
            self.next()

    def parse(self) -> Seq:
        seq = self.seq(terminators=())
        t = self.peek()
        if t.kind != "EOF":
            raise ShellSyntaxError(f"syntax error: unexpected \"{t.text}\"")
        return seq

    def seq(self, terminators: tuple[str, ...]) -> Seq:
        out = Seq()
        self.linebreak()
        while True:
            t = self.peek()
            if t.kind == "EOF" or (t.kind == "OP" and t.text == ")") or (t.kind == "WORD" and t.text in terminators):
                break
            ao = self.and_or()
            bg = False
            t = self.peek()
            if t.kind == "OP" and t.text in (";", "&"):
                self.next()
                bg = t.text == "&"
                out.items.append((ao, bg))
                self.linebreak()
                continue
            out.items.append((ao, bg))
            if t.kind == "NL":
                self.linebreak()
                continue
            break
        return out

    def and_or(self) -> AndOr:
        ao = AndOr(self.pipeline())
        while self.peek().kind == "OP" and self.peek().text in ("&&", "||"):
            op = self.next().text
            self.linebreak()
            ao.rest.append((op, self.pipeline()))
        return ao

    def pipeline(self) -> Pipeline:
        neg = False
        if self.is_word("!"):
            self.next()
            neg = True
        p = Pipeline([self.command()], neg)
        while self.peek().kind == "OP" and self.peek().text == "|":
            self.next()
            self.linebreak()
            p.cmds.append(self.command())
        return p

    def redirs(self, into: list[Redir]) -> None:
        while True:
            t = self.peek()
            if t.kind == "IONUM" or (t.kind == "OP" and t.text in ("<", ">", ">>", ">&", "<&", "<<")):
                into.append(self.redirect())
            else:
                return

    def redirect(self) -> Redir:
        t = self.next()
        fd = None
        if t.kind == "IONUM":
            fd = int(t.text)
            t = self.next()
        if t.kind != "OP" or t.text not in ("<", ">", ">>", ">&", "<&", "<<"):
            raise ShellSyntaxError(f"syntax error: unexpected \"{t.text}\"")
        target = self.next()
        if t.text == "<<":  # the body, literal (quoted delimiter) or to be expanded
            return Redir(0 if fd is None else fd, "<<q" if target.kind == "HEREDOCQ" else "<<", target.text)
        if target.kind != "WORD":
            raise ShellSyntaxError("syntax error: unexpected redirection target")
        if fd is None:
            fd = 0 if t.text in ("<", "<&") else 1
        return Redir(fd, t.text, target.text)

    def command(self) -> Any:
        t = self.peek()
        if t.kind == "OP" and t.text == "(":
            self.next()
            body = self.seq(terminators=())
            if not (self.peek().kind == "OP" and self.peek().text == ")"):
                raise ShellSyntaxError("syntax error: unexpected end of file (expecting \")\")")
            self.next()
            node: Any = Subshell(body)
        elif t.kind == "WORD" and t.text == "{":
            self.next()
            body = self.seq(terminators=("}",))
            self.expect_word("}")
            node = Group(body)
        elif t.kind == "WORD" and t.text == "if":
            node = self.if_clause()
        elif t.kind == "WORD" and t.text in ("while", "until"):
            self.next()
            cond = self.seq(terminators=("do",))
            self.expect_word("do")
            body = self.seq(terminators=("done",))
            self.expect_word("done")
            node = Loop(cond, body, t.text == "until")
        elif t.kind == "WORD" and t.text == "for":
            self.next()
            var = self.next()
            if var.kind != "WORD" or not re.match(r"^[A-Za-z_]\w*$", var.text):
                raise ShellSyntaxError("syntax error: bad for loop variable")
            words: list[str] = []
            self.linebreak()
            if self.is_word("in"):
                self.next()
                while self.peek().kind == "WORD":
                    words.append(self.next().text)
            else:
                words = ['"$@"']
            if self.peek().kind == "OP" and self.peek().text == ";":
                self.next()
            self.linebreak()
            self.expect_word("do")
            body = self.seq(terminators=("done",))
            self.expect_word("done")
            node = For(var.text, words, body)
        elif t.kind == "WORD" and t.text == "case":
            raise ShellSyntaxError("'case' is not modelled by the simulator")
        else:
            return self.simple()
        self.redirs(node.redirs)
        return node

    def if_clause(self) -> If:
        self.expect_word("if")
        branches = []
        cond = self.seq(terminators=("then",))
        self.expect_word("then")
        body = self.seq(terminators=("elif", "else", "fi"))
        branches.append((cond, body))
        else_body = None
        while True:
            if self.is_word("elif"):
                self.next()
                cond = self.seq(terminators=("then",))
                self.expect_word("then")
                body = self.seq(terminators=("elif", "else", "fi"))
                branches.append((cond, body))
                continue
            if self.is_word("else"):
                self.next()
                else_body = self.seq(terminators=("fi",))
            self.expect_word("fi")
            break
        return If(branches, else_body)

    def simple(self) -> Simple:
        cmd = Simple([], [])
        while True:
            t = self.peek()
            if t.kind == "IONUM" or (t.kind == "OP" and t.text in ("<", ">", ">>", ">&", "<&", "<<")):
                cmd.redirs.append(self.redirect())
            elif t.kind == "WORD":
                if not cmd.words and _ASSIGN.match(t.text):
                    cmd.assigns.append(self.next().text)
                else:
                    cmd.words.append(self.next().text)
            else:
                break
        if not cmd.words and not cmd.assigns and not cmd.redirs:
            t = self.peek()
            got = "end of file" if t.kind == "EOF" else f"\"{t.text}\""
            raise ShellSyntaxError(f"syntax error: unexpected {got}")
        return cmd


def parse(text: str) -> Seq:
    return Parser(text).parse()


# ---------------------------------------------------------------- streams


class Reader:
    def read(self, n: int = -1) -> bytes:
        raise NotImplementedError


class NullReader(Reader):
    def read(self, n: int = -1) -> bytes:
        return b""


class BytesReader(Reader):
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            out = self.data[self.pos:]
            self.pos = len(self.data)
        else:
            out = self.data[self.pos:self.pos + n]
            self.pos += len(out)
        return out


class Writer:
    session: Any = None  # set for writers that go to an SSH channel

    def write(self, data: bytes) -> None:
        raise NotImplementedError


class NullWriter(Writer):
    def write(self, data: bytes) -> None:
        pass


class BufferWriter(Writer):
    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data


class FileWriter(Writer):
    def __init__(self, host: Any, path: str):
        self.host = host
        self.path = path

    def write(self, data: bytes) -> None:
        if not data:
            return
        with self.host.lock:
            self.host.fs.write(self.path, data, append=True)


@dataclass
class IO:
    fds: dict[int, Any]

    def copy(self) -> "IO":
        return IO(dict(self.fds))

    @property
    def stdin(self) -> Reader:
        return self.fds.get(0) or NullReader()

    @property
    def out(self) -> Writer:
        return self.fds.get(1) or NullWriter()

    @property
    def err(self) -> Writer:
        return self.fds.get(2) or NullWriter()

    def sessions(self) -> set[Any]:
        return {w.session for fd, w in self.fds.items() if fd in (1, 2) and getattr(w, "session", None) is not None}


# ---------------------------------------------------------------- jobs


class Job:
    """A process group on the simulated host: killable, with nohup's immunity to SIGHUP."""

    def __init__(self, host: Any, name: str = "sh"):
        self.host = host
        self.name = name
        self.killed = threading.Event()
        self.signal = ""
        self.immune = 0
        self.children: list[threading.Thread] = []
        if host is not None and hasattr(host, "register_job"):
            host.register_job(self)

    def kill(self, signal: str = "KILL") -> None:
        if not self.killed.is_set():
            self.signal = signal
            self.killed.set()

    def hangup(self) -> None:
        if self.immune <= 0:
            self.kill("HUP")

    def check(self) -> None:
        if self.killed.is_set():
            raise JobKilled(self.signal or "KILL")

    def sleep(self, seconds: float) -> bool:
        """Sleep; False when the job was killed meanwhile."""
        if seconds <= 0:
            return not self.killed.is_set()
        return not self.killed.wait(seconds)

    def finish(self) -> None:
        if self.host is not None and hasattr(self.host, "unregister_job"):
            self.host.unregister_job(self)


# ---------------------------------------------------------------- interpreter

Dispatch = Callable[["Interp", list[str], IO], int]


class Interp:
    """Runs parsed scripts for one job. `dispatch(interp, argv, io)` runs a non-builtin command."""

    def __init__(self, host: Any, job: Job, io: IO, *, variables: dict[str, str] | None = None,
                 positional: list[str] | None = None, dispatch: Dispatch | None = None, cwd: str = "/"):
        self.host = host
        self.job = job
        self.io = io
        self.vars: dict[str, str] = dict(variables or {})
        self.positional = list(positional or ["sh"])
        self.status = 0
        self.last_bg = ""
        self.dispatch = dispatch
        self.cwd = cwd

    @property
    def _bash(self) -> bool:
        """ESX classic's service console runs bash (Red Hat), ESXi BusyBox ash: their messages differ."""
        st = getattr(self.host, "state", None)
        return bool(getattr(st, "is_classic", False))

    # ---- entry points
    def run(self, text: str) -> int:
        try:
            tree = parse(text)
        except ShellSyntaxError as e:
            self._err(f"sh: {e}\n")
            return 2
        try:
            return self.exec_seq(tree, self.io)
        except ExitShell as e:
            return e.code

    def child(self, io: IO, job: Job | None = None, positional: list[str] | None = None) -> "Interp":
        return Interp(self.host, job or self.job, io, variables=self.vars,
                      positional=positional if positional is not None else self.positional,
                      dispatch=self.dispatch, cwd=self.cwd)

    def _err(self, text: str, io: IO | None = None) -> None:
        try:
            (io or self.io).err.write(text.encode())
        except BrokenPipeError:
            raise JobKilled("PIPE") from None

    # ---- nodes
    def exec_seq(self, seq: Seq, io: IO) -> int:
        for ao, bg in seq.items:
            self.job.check()
            if bg:
                self.spawn(ao, io)
                self.status = 0
            else:
                self.status = self.exec_andor(ao, io)
        return self.status

    def exec_andor(self, ao: AndOr, io: IO) -> int:
        st = self.exec_pipeline(ao.first, io)
        for op, p in ao.rest:
            if (op == "&&" and st == 0) or (op == "||" and st != 0):
                st = self.exec_pipeline(p, io)
            self.status = st
        return st

    def exec_pipeline(self, p: Pipeline, io: IO) -> int:
        if len(p.cmds) == 1:
            st = self.exec_command(p.cmds[0], io)
        else:
            data: bytes | None = None
            st = 0
            for k, cmd in enumerate(p.cmds):
                sub = io.copy()
                if data is not None:
                    sub.fds[0] = BytesReader(data)
                buf = None
                if k < len(p.cmds) - 1:
                    buf = BufferWriter()
                    sub.fds[1] = buf
                st = self.exec_command(cmd, sub)
                data = bytes(buf.buf) if buf is not None else None
        if p.negate:
            st = 0 if st else 1
        self.status = st
        return st

    def exec_command(self, node: Any, io: IO) -> int:
        if isinstance(node, Simple):
            return self.exec_simple(node, io)
        try:
            io2 = self.apply_redirs(node.redirs, io)
        except _RedirFailed as e:
            self._err(e.message, io)
            return 1
        if isinstance(node, Subshell):
            sub = self.child(io2)
            try:
                return sub.exec_seq(node.body, io2)
            except ExitShell as e:
                return e.code
        if isinstance(node, Group):
            return self.exec_seq(node.body, io2)
        if isinstance(node, If):
            for cond, body in node.branches:
                if self.exec_seq(cond, io2) == 0:
                    return self.exec_seq(body, io2)
            if node.else_body is not None:
                return self.exec_seq(node.else_body, io2)
            return 0
        if isinstance(node, Loop):
            st = 0
            while True:
                self.job.check()
                c = self.exec_seq(node.cond, io2)
                if (c == 0) == node.until:
                    break
                st = self.exec_seq(node.body, io2)
            return st
        if isinstance(node, For):
            words: list[str] = []
            for w in node.words:
                words += self.expand(w)
            st = 0
            for w in words:
                self.job.check()
                self.vars[node.var] = w
                st = self.exec_seq(node.body, io2)
            return st
        raise TypeError(node)

    def spawn(self, ao: AndOr, io: IO) -> None:
        """`ao &`: a background job; stdin /dev/null, its own redirections applied first (as the child does)."""
        job = Job(self.host, name="bg")
        bio = io.copy()
        bio.fds[0] = NullReader()
        node_redirs: list[Redir] = []
        single = ao.first.cmds[0] if not ao.rest and len(ao.first.cmds) == 1 else None
        if single is not None:
            node_redirs = single.redirs
        try:
            bio = self.apply_redirs(node_redirs, bio)
        except _RedirFailed as e:
            self._err(e.message, io)
            job.finish()
            return
        held = bio.sessions()
        for s in held:
            s.hold()
        child = self.child(bio, job=job)

        def run() -> None:
            try:
                if single is not None:
                    if isinstance(single, Simple):
                        child.exec_simple(single, bio, redirected=True)
                    else:
                        stripped = type(single)(**{**single.__dict__, "redirs": []})
                        child.exec_command(stripped, bio)
                else:
                    child.exec_andor(ao, bio)
            except (JobKilled, ExitShell, BrokenPipeError):
                pass
            except Exception as e:  # a handler bug: tell the session's stderr/log, keep the host alive
                log = getattr(self.host, "log", None)
                if log:
                    log(f"background job crashed: {type(e).__name__}: {e}")
            finally:
                for s in held:
                    s.release()
                job.finish()

        t = threading.Thread(target=run, name="sim-bg-job", daemon=True)
        self.job.children.append(t)
        self.last_bg = str(id(t) % 30000 + 1000)
        t.start()

    # ---- simple commands
    def exec_simple(self, cmd: Simple, io: IO, *, redirected: bool = False) -> int:
        self.job.check()
        try:
            argv: list[str] = []
            for w in cmd.words:
                argv += self.expand(w)
            assigns = [(a.split("=", 1)[0], self.expand_single(a.split("=", 1)[1])) for a in cmd.assigns]
        except ShellSyntaxError as e:
            self._err(f"sh: {e}\n", io)
            return 2
        try:
            io2 = io if redirected else self.apply_redirs(cmd.redirs, io)
        except _RedirFailed as e:
            self._err(e.message, io)
            return 1
        if not argv:
            for k, v in assigns:
                self.vars[k] = v
            return 0
        env = dict(self.vars)
        env.update(assigns)
        return self.exec_argv(argv, io2, env)

    def exec_argv(self, argv: list[str], io: IO, env: dict[str, str] | None = None) -> int:
        self.job.check()
        name = argv[0]
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return builtin(self, argv, io)
        if self.dispatch is None:
            self._err(f"bash: {name}: command not found\n" if self._bash else f"sh: {name}: not found\n", io)
            return 127
        return self.dispatch(self, argv, io)

    # ---- redirections
    def apply_redirs(self, redirs: list[Redir], io: IO) -> IO:
        if not redirs:
            return io
        out = io.copy()
        for r in redirs:
            if r.op in ("<<", "<<q"):  # a here-document: its body is the fd's input
                body = r.target if r.op == "<<q" else self.expand_single('"' + r.target.replace('"', '\\"') + '"')
                out.fds[r.fd] = BytesReader(body.encode("utf-8", "surrogateescape"))
                continue
            target = self.expand_single(r.target)
            if r.op in (">&", "<&"):
                if target == "-":
                    out.fds[r.fd] = NullWriter() if r.op == ">&" else NullReader()
                    continue
                if not target.isdigit():
                    if r.op == ">&":  # `>&file` is `>file 2>&1` in ash
                        w = self._open_write(target, append=False)
                        out.fds[1] = w
                        out.fds[2] = w
                        continue
                    raise _RedirFailed(f"sh: {target}: bad file descriptor\n")
                src = out.fds.get(int(target))
                if src is None:
                    raise _RedirFailed(f"sh: {target}: bad file descriptor\n")
                out.fds[r.fd] = src
            elif r.op == "<":
                path = self._path(target)
                if path == "/dev/null":
                    out.fds[r.fd] = NullReader()
                    continue
                with self.host.lock:
                    if not self.host.fs.is_file(path):
                        raise _RedirFailed(f"bash: {target}: No such file or directory\n" if self._bash
                                           else f"sh: can't open '{target}': No such file or directory\n")
                    data = self.host.fs.read(path)
                out.fds[r.fd] = BytesReader(data)
            else:
                out.fds[r.fd] = self._open_write(target, append=r.op == ">>")
        return out

    def _open_write(self, target: str, append: bool) -> Writer:
        path = self._path(target)
        if path == "/dev/null":
            return NullWriter()
        from labctl.sim.fs import FsError

        with self.host.lock:
            try:
                if not append or not self.host.fs.is_file(path):
                    self.host.fs.write(path, b"")
            except FsError:
                raise _RedirFailed(f"bash: {target}: No such file or directory\n" if self._bash
                                   else f"sh: can't create {target}: nonexistent directory\n") from None
        return FileWriter(self.host, path)

    def _path(self, p: str) -> str:
        from labctl.sim.fs import norm

        return norm(p, self.cwd)

    # ---- expansion
    def expand_single(self, raw: str) -> str:
        return "".join(t for t, _ in self._chunks(raw))

    def expand(self, raw: str) -> list[str]:
        if raw in ('"$@"',):
            return list(self.positional[1:])
        fields: list[tuple[str, bool]] = []  # (text, has an unquoted glob character)
        cur: list[str] = []
        have = globby = False
        for text, quoted in self._chunks(raw):
            if quoted:
                cur.append(text)
                have = True
                continue
            i = 0
            for m in re.finditer(r"[ \t\n]+", text):
                seg = text[i:m.start()]
                if seg:
                    cur.append(seg)
                    have = True
                    globby = globby or any(c in seg for c in "*?[")
                if have:
                    fields.append(("".join(cur), globby))
                    cur, have, globby = [], False, False
                i = m.end()
            seg = text[i:]
            if seg:
                cur.append(seg)
                have = True
                globby = globby or any(c in seg for c in "*?[")
        if have:
            fields.append(("".join(cur), globby))
        out: list[str] = []
        for text, g in fields:
            out += (self._glob(text) or [text]) if g else [text]
        return out

    def _glob(self, pattern: str) -> list[str]:
        """Pathname expansion over the simulated filesystem (no match: the word stays as it is)."""
        import fnmatch

        from labctl.sim.fs import norm

        absolute = pattern.startswith("/")
        base = "/" if absolute else self.cwd
        parts = [p for p in pattern.split("/") if p]
        with self.host.lock:
            fs = self.host.fs
            paths = ["/" if absolute else ""]
            for k, part in enumerate(parts):
                nxt = []
                for p in paths:
                    here = norm(p or ".", base)
                    if not any(c in part for c in "*?["):
                        cand = [part]
                    elif fs.is_dir(here):
                        cand = [n for n in fs.listdir(here) if fnmatch.fnmatchcase(n, part)
                                and (part.startswith(".") or not n.startswith("."))]
                    else:
                        cand = []
                    for n in cand:
                        q = (p.rstrip("/") + "/" + n) if p else n
                        if fs.exists(norm(q, base)) and (k == len(parts) - 1 or fs.is_dir(norm(q, base))):
                            nxt.append(q)
                paths = nxt
        return sorted(paths)

    def _chunks(self, raw: str) -> list[tuple[str, bool]]:
        chunks: list[tuple[str, bool]] = []
        i, n = 0, len(raw)
        lit: list[str] = []

        def flush() -> None:
            if lit:
                chunks.append(("".join(lit), False))
                lit.clear()

        while i < n:
            c = raw[i]
            if c == "\\":
                flush()
                if i + 1 < n:
                    chunks.append((raw[i + 1], True))
                i += 2
            elif c == "'":
                flush()
                j = raw.index("'", i + 1)
                chunks.append((raw[i + 1:j], True))
                i = j + 1
            elif c == '"':
                flush()
                j = _skip_dquote(raw, i)
                chunks.append((self._dquote(raw[i + 1:j]), True))
                i = j + 1
            elif c == "$":
                flush()
                text, i = self._dollar(raw, i)
                chunks.append((text, False))
            elif c == "`":
                flush()
                j = raw.index("`", i + 1)
                chunks.append((self._subst(raw[i + 1:j]), False))
                i = j + 1
            else:
                lit.append(c)
                i += 1
        flush()
        return chunks

    def _dquote(self, s: str) -> str:
        out: list[str] = []
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n and s[i + 1] in '$`"\\\n':
                if s[i + 1] != "\n":
                    out.append(s[i + 1])
                i += 2
            elif c == "$":
                text, i = self._dollar(s, i)
                out.append(text)
            elif c == "`":
                j = s.index("`", i + 1)
                out.append(self._subst(s[i + 1:j]))
                i = j + 1
            else:
                out.append(c)
                i += 1
        return "".join(out)

    def _dollar(self, s: str, i: int) -> tuple[str, int]:
        n = len(s)
        if i + 1 >= n:
            return "$", i + 1
        c = s[i + 1]
        if c == "(":
            if i + 2 < n and s[i + 2] == "(":
                raise ShellSyntaxError("arithmetic expansion is not modelled by the simulator")
            j = _skip_paren(s, i + 1)
            return self._subst(s[i + 2:j - 1]), j
        if c == "{":
            j = s.index("}", i)
            inner = s[i + 2:j]
            m = re.match(r"^([A-Za-z_]\w*|[0-9?$!#@*])(?:(:?[-=+?])(.*))?$", inner, re.S)
            if not m:
                raise ShellSyntaxError(f"${{{inner}}}: bad substitution")
            name, op, word = m.group(1), m.group(2), m.group(3)
            val = self._var(name)
            if op in (":-", "-"):
                unset = val is None or (op == ":-" and val == "")
                return (self.expand_single(word) if unset else val or ""), j + 1
            if op in (":=", "="):
                if val is None or (op == ":=" and val == ""):
                    val = self.expand_single(word)
                    self.vars[name] = val
                return val, j + 1
            if op in (":+", "+"):
                isset = val is not None and (op == "+" or val != "")
                return (self.expand_single(word) if isset else ""), j + 1
            if op:
                raise ShellSyntaxError(f"${{{inner}}}: not modelled by the simulator")
            return val or "", j + 1
        if c in "?$!#@*" or c.isdigit():
            return self._var(c) or "", i + 2
        m = re.match(r"[A-Za-z_]\w*", s[i + 1:])
        if not m:
            return "$", i + 1
        return self._var(m.group(0)) or "", i + 1 + m.end()

    def _var(self, name: str) -> str | None:
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(getattr(self.host, "pid", 4242))
        if name == "!":
            return self.last_bg
        if name == "#":
            return str(len(self.positional) - 1)
        if name in ("@", "*"):
            return " ".join(self.positional[1:])
        if name.isdigit():
            k = int(name)
            return self.positional[k] if k < len(self.positional) else None
        return self.vars.get(name)

    def _subst(self, script: str) -> str:
        buf = BufferWriter()
        io = IO({0: NullReader(), 1: buf, 2: self.io.err})
        sub = self.child(io)
        sub.run(script)
        self.status = sub.status
        return bytes(buf.buf).decode("utf-8", "surrogateescape").rstrip("\n")


class _RedirFailed(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------- builtins


def _b_exit(sh: Interp, argv: list[str], io: IO) -> int:
    code = sh.status
    if len(argv) > 1:
        try:
            code = int(argv[1]) & 0xFF
        except ValueError:
            sh._err(f"sh: exit: Illegal number: {argv[1]}\n", io)
            code = 2
    raise ExitShell(code)


def _b_true(sh: Interp, argv: list[str], io: IO) -> int:
    return 0


def _b_false(sh: Interp, argv: list[str], io: IO) -> int:
    return 1


def _b_export(sh: Interp, argv: list[str], io: IO) -> int:
    for a in argv[1:]:
        k, eq, v = a.partition("=")
        if eq:
            sh.vars[k] = v
    return 0


def _b_unset(sh: Interp, argv: list[str], io: IO) -> int:
    for a in argv[1:]:
        sh.vars.pop(a, None)
    return 0


def _b_cd(sh: Interp, argv: list[str], io: IO) -> int:
    target = sh._path(argv[1] if len(argv) > 1 else "/")
    with sh.host.lock:
        ok = sh.host.fs.is_dir(target)
    if not ok:
        sh._err(f"sh: cd: can't cd to {argv[1] if len(argv) > 1 else '/'}\n", io)
        return 2
    sh.cwd = target
    return 0


def _b_sh(sh: Interp, argv: list[str], io: IO) -> int:
    args = argv[1:]
    if args and args[0] == "-c":
        if len(args) < 2:
            sh._err("sh: -c requires an argument\n", io)
            return 2
        script = args[1]
        positional = args[2:] or ["sh"]
        return sh.child(io, positional=positional).run(script)
    if args and args[0].startswith("-"):
        sh._err(f"sh: option {args[0]} is not modelled by the simulator\n", io)
        return 2
    if args:
        path = sh._path(args[0])
        with sh.host.lock:
            if not sh.host.fs.is_file(path):
                sh._err(f"sh: can't open '{args[0]}': No such file or directory\n", io)
                return 2
            script = sh.host.fs.read_text(path)
        return sh.child(io, positional=args).run(script)
    script = io.stdin.read().decode("utf-8", "surrogateescape")
    return sh.child(io).run(script)


def _b_nohup(sh: Interp, argv: list[str], io: IO) -> int:
    if len(argv) < 2:
        sh._err("Usage: nohup PROG ARGS\n", io)
        return 1
    sh.job.immune += 1
    try:
        return sh.exec_argv(argv[1:], io)
    finally:
        sh.job.immune -= 1


def _b_wait(sh: Interp, argv: list[str], io: IO) -> int:
    for t in list(sh.job.children):
        while t.is_alive():
            sh.job.check()
            t.join(0.05)
    return 0


_BUILTINS: dict[str, Callable[[Interp, list[str], IO], int]] = {
    "exit": _b_exit,
    "true": _b_true,
    "false": _b_false,
    ":": _b_true,
    "export": _b_export,
    "unset": _b_unset,
    "cd": _b_cd,
    "sh": _b_sh,
    "/bin/sh": _b_sh,
    "ash": _b_sh,
    "nohup": _b_nohup,
    "/bin/nohup": _b_nohup,
    "wait": _b_wait,
}
