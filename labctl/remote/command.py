"""Remote command lines built from argv lists, never from pasted strings.

ESX classic runs bash in its service console, ESXi a BusyBox ash: everything here produces plain POSIX sh.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

Argv = Sequence[str]


def sh(argv: Argv | str) -> str:
    """One simple command: each argument quoted with shlex.quote. A str is taken as already built (by this
    module) and returned unchanged, so callers may pass either."""
    if isinstance(argv, str):
        return argv
    if not argv:
        raise ValueError("empty command")
    return " ".join(shlex.quote(str(a)) for a in argv)


def seq(*commands: Argv | str) -> str:
    """Run commands one after the other regardless of their status (`a; b`)."""
    return "; ".join(sh(c) for c in commands)


def all_of(*commands: Argv | str) -> str:
    """Run commands while they succeed (`a && b`)."""
    return " && ".join(sh(c) for c in commands)


def redirect_out(command: Argv | str, path: str, *, append: bool = False) -> str:
    """`command > path` (or `>>`), the path quoted."""
    return f"{sh(command)} {'>>' if append else '>'} {shlex.quote(path)}"


def write_stdin_to(path: str) -> str:
    """`cat > path`: the upload fallback for hosts without SFTP (stdin is streamed by the caller)."""
    return redirect_out(["cat"], path)


def sed_replace_line(pattern_prefix: str, new_line: str, path: str) -> list[str]:
    """argv for `sed -i` replacing every line that starts with `pattern_prefix` by `new_line`.

    Both are escaped for a sed basic regex / replacement (`/` delimiter), then the whole sed program is one
    shell-quoted argument.
    """
    return ["sed", "-i", f"s/^{_sed_regex(pattern_prefix)}.*/{_sed_repl(new_line)}/", path]


def sed_delete_lines(pattern_prefix: str, path: str) -> list[str]:
    """argv for `sed -i` deleting every line that starts with `pattern_prefix`."""
    return ["sed", "-i", f"/^{_sed_regex(pattern_prefix)}/d", path]


def _sed_regex(text: str) -> str:
    return "".join("\\" + ch if ch in "\\.[]*^$/" else ch for ch in text)


def _sed_repl(text: str) -> str:
    return text.replace("\\", "\\\\").replace("&", "\\&").replace("/", "\\/")


def wait_while_not(test: Argv, seconds: float) -> str:
    """Wait up to `seconds`, ending early once `test` succeeds: `for i in 1 2 ..; do test || sleep STEP; done`.

    No arithmetic and no `break` (not every ESX shell has them): one word per step of at most a second, so once
    the condition holds the remaining steps only run `test`."""
    import math

    steps = max(1, math.ceil(seconds))
    words = " ".join(str(k) for k in range(1, steps + 1))
    return f"for i in {words}; do {sh(test)} || {sh(['sleep', f'{seconds / steps:g}'])}; done"


def detached(script_lines: Iterable[Argv | str], *, log: str) -> str:
    """Run a sequence of commands as one job that survives the SSH session dropping.

    `nohup sh -c '<script>' </dev/null >log 2>&1 &` — all three standard streams redirected so sshd does not wait
    for the job, and the command returns at once. Each line of `script_lines` is one command (built by this module).
    """
    script = "; ".join(sh(c) for c in script_lines)
    return f"nohup sh -c {shlex.quote(script)} </dev/null >{shlex.quote(log)} 2>&1 &"
