"""The boot loader files an ESX(i) installer reads, as text: BOOT.CFG (mboot, ESXi 5.0+) and ISOLINUX.CFG.

Pure functions, no I/O. BOOT.CFG is `key=value` lines (VMware's install guide, "About the boot.cfg File": "Any
other line must remain unchanged"); the installer takes its script from `ks=` in `kernelopt`, the path in
uppercase (`ks=cdrom:/KS.CFG`). ESX classic (3.5/4.x) is Anaconda behind isolinux: `ks=` goes on the `append` line
of the install label. Patching is idempotent: an existing `ks=` is replaced, a boot option already present is not
added again, and every other byte of the file is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KS_PATH = "cdrom:/KS.CFG"


def _split_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _eol(line: str) -> str:
    return line[len(line.rstrip("\r\n")):]


def bootcfg_values(text: str) -> dict[str, str]:
    """`key=value` lines of a BOOT.CFG (comments skipped; the first occurrence of a key wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or "=" not in s:
            continue
        k, _, v = s.partition("=")
        out.setdefault(k.strip(), v.strip())
    return out


def kickstart_in_words(words: list[str]) -> str | None:
    for w in words:
        if w.startswith("ks="):
            return w[3:]
    return None


def bootcfg_kickstart(text: str) -> str | None:
    """The `ks=` of BOOT.CFG's kernelopt, or None."""
    return kickstart_in_words(bootcfg_values(text).get("kernelopt", "").split())


def _merge_words(words: list[str], ks: str, options: list[str]) -> list[str]:
    """`words` without any `ks=` and without the options (a `key=value` option also drops the key's old value),
    then `ks=`, then the options in order: the same result however often it is applied."""
    keys = {o.split("=", 1)[0] for o in options if "=" in o}
    bare = {o for o in options if "=" not in o}
    out = [w for w in words
           if not w.startswith("ks=") and w not in bare and w.split("=", 1)[0] not in keys]
    out.append(f"ks={ks}")
    for opt in options:
        if opt not in out:
            out.append(opt)
    return out


def check_boot_options(options: list[str]) -> None:
    """Boot options are single words without ks= (labctl sets that) and without line breaks."""
    for opt in options:
        if not opt or any(c.isspace() for c in opt) or not opt.isprintable():
            raise ValueError(f"boot option {opt!r} must be one printable word (no spaces or line breaks)")
        if opt.startswith("ks="):
            raise ValueError(f"boot option {opt!r}: labctl sets ks= itself (ks={KS_PATH})")


def patch_bootcfg(text: str, options: list[str], ks: str = KS_PATH) -> str:
    """BOOT.CFG with `ks=` (and `options`) in `kernelopt`; a missing kernelopt line is added after `kernel=`."""
    check_boot_options(options)
    lines = _split_lines(text)
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        key, sep, value = body.partition("=")
        if sep and key.strip() == "kernelopt":
            words = _merge_words(value.split(), ks, options)
            lines[i] = f"{key}={' '.join(words)}{_eol(line)}"
            return "".join(lines)
    eol = "\r\n" if "\r\n" in text else "\n"
    new = "kernelopt=" + " ".join(_merge_words([], ks, options)) + eol
    for i, line in enumerate(lines):
        if line.split("=", 1)[0].strip() == "kernel":
            if not line.endswith(("\n", "\r")):
                lines[i] = line + eol
            lines.insert(i + 1, new)
            return "".join(lines)
    raise ValueError("BOOT.CFG has no kernel= line: not an ESXi boot loader configuration")


# --- isolinux --------------------------------------------------------------------------------------------------

_LABEL_RE = re.compile(r"^\s*label\s+(\S+)", re.IGNORECASE)
_DEFAULT_RE = re.compile(r"^\s*default\s+(\S+)", re.IGNORECASE)
_APPEND_RE = re.compile(r"^(\s*append\s+)(.*)$", re.IGNORECASE)
_KERNEL_RE = re.compile(r"^\s*kernel\s+(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class IsolinuxLabel:
    name: str
    kernel: str
    append_line: int | None  # index into the file's lines
    words: tuple[str, ...]


def isolinux_labels(text: str) -> tuple[str | None, list[IsolinuxLabel]]:
    """(default label, labels with their kernel and `append` words)."""
    default = None
    labels: list[IsolinuxLabel] = []
    cur: dict | None = None

    def close() -> None:
        if cur is not None:
            labels.append(IsolinuxLabel(cur["name"], cur["kernel"], cur["append"], tuple(cur["words"])))

    for i, line in enumerate(text.splitlines()):
        if m := _DEFAULT_RE.match(line):
            default = m.group(1)
        elif m := _LABEL_RE.match(line):
            close()
            cur = {"name": m.group(1), "kernel": "", "append": None, "words": []}
        elif cur is not None and (m := _KERNEL_RE.match(line)):
            cur["kernel"] = m.group(1)
        elif cur is not None and (m := _APPEND_RE.match(line)):
            cur["append"] = i
            cur["words"] = m.group(2).split()
    close()
    return default, labels


def install_label(text: str) -> IsolinuxLabel | None:
    """The label that boots the installer: the default one if it has an initrd, else the first with an initrd."""
    default, labels = isolinux_labels(text)
    with_initrd = [lb for lb in labels if lb.append_line is not None
                   and any(w.startswith("initrd=") for w in lb.words)]
    for lb in with_initrd:
        if default is not None and lb.name.lower() == default.lower():
            return lb
    return with_initrd[0] if with_initrd else None


def isolinux_kickstart(text: str) -> str | None:
    lb = install_label(text)
    return kickstart_in_words(list(lb.words)) if lb else None


def patch_isolinux(text: str, options: list[str], ks: str = KS_PATH) -> str:
    """ISOLINUX.CFG with `ks=` (and `options`) on the install label's `append` line (ESX classic)."""
    check_boot_options(options)
    lb = install_label(text)
    if lb is None or lb.append_line is None:
        raise ValueError("ISOLINUX.CFG has no label with an initrd= append line: not an ESX classic installer")
    lines = _split_lines(text)
    line = lines[lb.append_line]
    m = _APPEND_RE.match(line.rstrip("\r\n"))
    assert m is not None
    lines[lb.append_line] = m.group(1) + " ".join(_merge_words(m.group(2).split(), ks, options)) + _eol(line)
    return "".join(lines)
