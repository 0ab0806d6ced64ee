"""The simulated installer's kickstart interpreter: what an ESX(i) installer accepts, per era.

`parse(text, era)` returns a `Kickstart` (commands with their options, and the script sections) or raises
`KickstartError` with the installer's own kind of message and the line. Nothing unknown is skipped: a command the
era's installer does not know stops the install, as it does on a real host.

Eras and their command sets (docs/install.md cites the syntax of each):
- `esxi` (ESXi 5.0 – 8.x, ESX 9.x; VMware's "Installation and Upgrade Script Commands"): accepteula | vmaccepteula
  (required), install | installorupgrade | upgrade (one required), rootpw (required), network, keyboard, reboot,
  paranoid, serialnum | vmserialnum, clearpart, part | partition, dryrun, %include | include, and the sections
  %pre, %post, %firstboot [--interpreter=busybox|python].
- `esxi-4.1` (ESXi 4.1 Installable): accepteula | vmaccepteula, autopart (required), install (cdrom|usb|nfs|url),
  rootpw (required), network, keyboard, paranoid, serialnum | vmserialnum, clearpart, dryrun, reboot, %include,
  %pre, %post, %firstboot [--unsupported] [--interpreter=busybox|python].
- `esx-classic-4` (ESX 4.0/4.1; Anaconda with VMware's commands): accepteula | vmaccepteula (required), install
  (required), rootpw (required), auth | authconfig, autopart, bootloader, clearpart, dryrun, esxlocation, firewall,
  firewallport, keyboard, network, part | partition, reboot, serialnum | vmserialnum, timezone, virtualdisk,
  zerombr, %include, %packages, %pre, %post.
- `esx-classic-3` (ESX 3.5; Red Hat 3's Anaconda + VMware): install (required), cdrom | url | nfs, vmaccepteula
  (required), rootpw (required), lang, langsupport, keyboard, mouse, skipx, text, timezone, authconfig,
  bootloader, network, firewall, clearpart, part | partition, zerombr, reboot, vmlicense, %packages, %pre, %post.

Error wording: the ESXi installer (weasel) reports script errors as "error:<file>:line N: <what>"; the exact texts
are not confirmed by captures [L]. Anaconda shows "The following error was found while parsing the kickstart
configuration file:" followed by the problem [M].
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

SECTIONS = ("%pre", "%post", "%firstboot", "%packages")

_COMMANDS = {
    "esxi": {"accepteula", "vmaccepteula", "install", "installorupgrade", "upgrade", "rootpw", "network",
             "keyboard", "reboot", "paranoid", "serialnum", "vmserialnum", "clearpart", "part", "partition",
             "dryrun", "%include", "include"},
    "esxi-4.1": {"accepteula", "vmaccepteula", "autopart", "install", "rootpw", "network", "keyboard",
                 "paranoid", "serialnum", "vmserialnum", "clearpart", "dryrun", "reboot", "%include", "include"},
    "esx-classic-4": {"accepteula", "vmaccepteula", "install", "rootpw", "auth", "authconfig", "autopart",
                      "bootloader", "clearpart", "dryrun", "esxlocation", "firewall", "firewallport", "keyboard",
                      "network", "part", "partition", "reboot", "serialnum", "vmserialnum", "timezone",
                      "virtualdisk", "zerombr", "%include", "include"},
    "esx-classic-3": {"install", "cdrom", "url", "nfs", "vmaccepteula", "rootpw", "lang", "langsupport",
                      "keyboard", "mouse", "skipx", "text", "timezone", "authconfig", "bootloader", "network",
                      "firewall", "clearpart", "part", "partition", "zerombr", "reboot", "vmlicense", "%include",
                      "include"},
}
_SECTIONS = {
    "esxi": {"%pre", "%post", "%firstboot"},
    "esxi-4.1": {"%pre", "%post", "%firstboot"},
    "esx-classic-4": {"%pre", "%post", "%packages"},
    "esx-classic-3": {"%pre", "%post", "%packages"},
}
_NETWORK_OPTS = {"bootproto", "ip", "netmask", "gateway", "hostname", "device", "vlanid", "nameserver",
                 "addvmportgroup"}


class KickstartError(Exception):
    """The installer stopped on the script: `message` is what its screen and log say."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Section:
    name: str  # %pre | %post | %firstboot | %packages
    options: dict[str, str]
    body: str
    line: int

    @property
    def interpreter(self) -> str:
        return self.options.get("interpreter", "busybox" if self.name == "%firstboot" else "bash")


@dataclass
class Kickstart:
    era: str
    commands: dict[str, tuple[list[str], dict[str, str], int]] = field(default_factory=dict)  # name -> (args, opts, line)
    sections: list[Section] = field(default_factory=list)

    def has(self, *names: str) -> bool:
        return any(n in self.commands for n in names)

    def opts(self, name: str) -> dict[str, str]:
        return self.commands[name][1] if name in self.commands else {}

    def args(self, name: str) -> list[str]:
        return self.commands[name][0] if name in self.commands else []

    def scripts(self, name: str) -> list[Section]:
        return [s for s in self.sections if s.name == name]


def is_classic(era: str) -> bool:
    return era.startswith("esx-classic")


def _err(era: str, where: str, line: int, what: str) -> KickstartError:
    if is_classic(era):
        return KickstartError("The following error was found while parsing the kickstart configuration file:\n\n"
                              f"line {line}: {what}")
    return KickstartError(f"error:{where}:line {line}: {what}")


def _options(words: list[str]) -> tuple[list[str], dict[str, str]]:
    """`--key=value`, `--key value`, `--flag` and positional words."""
    args: list[str] = []
    opts: dict[str, str] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            key, eq, value = w[2:].partition("=")
            if not eq and i + 1 < len(words) and not words[i + 1].startswith("--") and key not in (
                    "iscrypted", "firstdisk", "overwritevmfs", "novmfsondisk", "unsupported", "ignoressd",
                    "preservevmfs", "forceunsupportedinstall", "enableshadow", "enablemd5", "all", "initlabel",
                    "grow", "onfirstdisk", "onfirstvmfs", "nochroot", "utc", "default"):
                value, i = words[i + 1], i + 1
            opts[key] = value if (eq or value) else ""
        else:
            args.append(w)
        i += 1
    return args, opts


def parse(text: str, era: str, *, where: str = "/KS.CFG") -> Kickstart:
    """The script as the era's installer reads it; KickstartError on the first problem it would stop at."""
    if era not in _COMMANDS:
        raise ValueError(f"unknown installer era {era!r}")
    ks = Kickstart(era)
    cur: Section | None = None
    body: list[str] = []

    def close() -> None:
        if cur is not None:
            cur.body = "".join(body)
            ks.sections.append(cur)

    for n, raw in enumerate(text.splitlines(keepends=True), 1):
        line = raw.strip()
        if line.startswith("%") and line.split()[0] in (*SECTIONS, "%end"):
            close()
            body = []
            word = line.split()[0]
            if word == "%end":
                cur = None
                continue
            if word not in _SECTIONS[era]:
                raise _err(era, where, n, f"unknown section {word!r}")
            try:
                args, opts = _options(shlex.split(line)[1:])
            except ValueError as e:
                raise _err(era, where, n, f"cannot parse {line!r}: {e}") from None
            interp = opts.get("interpreter")
            if word != "%packages" and interp is not None and interp not in ("busybox", "python", "bash", "sh"):
                raise _err(era, where, n, f"interpreter {interp!r} is not supported")
            cur = Section(word, opts, "", n)
            continue
        if cur is not None:
            body.append(raw if raw.endswith("\n") else raw + "\n")
            continue
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            raise _err(era, where, n, f"cannot parse {line!r}: {e}") from None
        if not words:
            continue
        name = words[0]
        if name not in _COMMANDS[era]:
            raise _err(era, where, n, f"unknown command {name!r}")
        if name in ("%include", "include"):
            raise _err(era, where, n, "%include is not modelled by the simulator")
        args, opts = _options(words[1:])
        ks.commands[name] = (args, opts, n)
    close()
    _check(ks, where)
    return ks


def _check(ks: Kickstart, where: str) -> None:
    era = ks.era
    last = max((c[2] for c in ks.commands.values()), default=1)

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise _err(era, where, last, what)

    if era == "esx-classic-3":
        need(ks.has("vmaccepteula"), "the VMware license agreement was not accepted (vmaccepteula is required)")
    else:
        need(ks.has("accepteula", "vmaccepteula"), "vmaccepteula command was not specified")
    need(ks.has("rootpw"), "rootpw command was not specified")
    if era == "esxi":
        need(ks.has("install", "installorupgrade", "upgrade"),
             "no installation target: one of install, installorupgrade or upgrade is required")
        target = next((c for c in ("install", "installorupgrade") if ks.has(c)), None)
        if target is not None and not ks.opts(target).keys() & {"firstdisk", "disk", "drive"}:
            raise _err(era, where, ks.commands[target][2], f"{target} requires --firstdisk or --disk")
    elif era == "esxi-4.1":
        need(ks.has("autopart"), "autopart command was not specified")
    else:
        need(ks.has("install"), "install command was not specified")
    args, opts, line = ks.commands["rootpw"]
    if not args:
        raise _err(era, where, line, "rootpw requires a password")
    if "iscrypted" in opts and not args[0].startswith(("$1$", "$6$", "$5$")):
        raise _err(era, where, line, "rootpw --iscrypted: not a crypt hash")
    if ks.has("network"):
        nargs, nopts, nline = ks.commands["network"]
        bad = [k for k in nopts if k not in _NETWORK_OPTS]
        if bad:
            raise _err(era, where, nline, f"network: unknown option --{bad[0]}")
        proto = nopts.get("bootproto", "dhcp")
        if proto not in ("static", "dhcp"):
            raise _err(era, where, nline, f"network: --bootproto must be static or dhcp, not {proto!r}")
        if proto == "static":
            for k in ("ip", "netmask"):
                if not nopts.get(k):
                    raise _err(era, where, nline, f"network --bootproto=static requires --{k}")
