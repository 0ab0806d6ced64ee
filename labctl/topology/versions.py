"""What labctl knows about ESX/ESXi releases and Workstation releases (workstation.md sections 2–4,
labctl/releases.py for the update and build tables).

ESX version notations all normalise to one `EsxVersion` (release, update, optional patch and build):
  8.0u3 · 8.0U3 · "8.0 U3" · "8.0 Update 3" · 8.0.3 · 8.0.2-0.40.23825572 · 8.0.3-24022510 ·
  "VMware ESXi 8.0.2 build-23825572" · 6.7.0 + build (hosts before 7.0 print x.y.0 for every update) ·
  9.0.0.0 · 9.0.1.0 · 9.0.0.0100 · 9.0.0.0.24755229 · 9.0.1-0101.12345678 (KB 395110's 9.x forms)
`resolve_esx` also checks that the release and update exist and says what the closest real one is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labctl import releases

# ---------------------------------------------------------------- ESX/ESXi versions


@dataclass(frozen=True)
class EsxVersion:
    major: int
    minor: int
    update: int = 0  # "Update N" up to 8.x; the maintenance release on 9.x (9.0.1 = 9.0 maintenance 1)
    patch: str = ""  # a patch on top of the update: "0100" (9.x express patch), "c" (8.0 U2c)
    build: int | None = None  # when the notation carried one (or the patch is a known one)

    @property
    def release(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def triplet(self) -> str:
        """x.y.z as hosts print it: the update from 7.0 on, always 0 before (ESXi 6.7 U3 prints 6.7.0)."""
        return f"{self.major}.{self.minor}.{self.update if self.major >= 7 else 0}"

    def __str__(self) -> str:
        """The canonical notation of the update: 8.0u3 (up to 8.x), 9.0.1 (9.x has no Update N names). Patches
        and builds are in `display` and `build`; every layer parses this form (the simulator included)."""
        if self.major >= 9:
            return f"{self.major}.{self.minor}.{self.update}"
        return f"{self.major}.{self.minor}" + (f"u{self.update}" if self.update else "")

    @property
    def display(self) -> str:
        """How VMware names it: 8.0 U3, 8.0 U2c, 6.7 GA, 9.0.1.0, 9.0.0.0100."""
        if self.major >= 9:
            return f"{self.major}.{self.minor}.{self.update}.{self.patch or '0'}"
        return f"{self.major}.{self.minor} " + (f"U{self.update}{self.patch}" if self.update else (self.patch or "GA"))


def product_name(flavor: str, v: EsxVersion | tuple[int, int]) -> str:
    """ESX classic up to 4.1, ESXi 3.5 to 8.x, and ESX again from 9.0 (VMware renamed ESXi to ESX with 9.0)."""
    release = v.release if isinstance(v, EsxVersion) else v
    if flavor == "esx" and release <= (4, 1):
        return "ESX"
    return "ESX" if release >= (9, 0) else "ESXi"


_PREFIX = re.compile(r"^(?:vmware\s+)?(?:esxi|esx)(?:\s+server)?\s+", re.IGNORECASE)
_BUILD_SUFFIX = re.compile(r"\s*(?:\(?\s*(?:release\s*)?build[- ]?(\d{4,})\s*\)?)$", re.IGNORECASE)
_UPDATE_FORM = re.compile(r"^(\d+)\.(\d+)(?:\s*(?:u|update)\s*(\d+)([a-z])?|\s*(ga))?$", re.IGNORECASE)
_DOTTED_FORM = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d{5,}))?$")
_FULL_8 = re.compile(r"^(\d+)\.(\d+)\.(\d+)-(\d+)\.(\d+)\.(\d{5,})$")  # 8.0.2-0.40.23825572
_FULL_9 = re.compile(r"^(\d+)\.(\d+)\.(\d+)-(\d{1,4})\.(\d{5,})$")  # 9.0.1-0101.12345678, 8.0.3-24022510 is below
_SHORT_BUILD = re.compile(r"^(\d+)\.(\d+)\.(\d+)-(\d{5,})$")  # 8.0.3-24022510


@dataclass(frozen=True)
class _Parsed:
    major: int
    minor: int
    update: int | None  # None: not given (x.y or a pre-7.0 x.y.0 with a build)
    patch: str
    build: int | None
    third: int | None  # the x.y.Z field as written, for the pre-7.0 check


def _parse(text: str) -> _Parsed | None:
    s = " ".join(str(text).split())
    s = _PREFIX.sub("", s)
    build = None
    m = _BUILD_SUFFIX.search(s)
    if m and m.start() > 0:
        build = int(m.group(1))
        s = s[: m.start()].strip()
    if (m := _UPDATE_FORM.match(s)):
        up = int(m.group(3)) if m.group(3) is not None else (0 if m.group(5) else None)
        return _Parsed(int(m.group(1)), int(m.group(2)), up, (m.group(4) or "").lower(), build, None)
    if (m := _FULL_8.match(s)) and build is None:
        ma, mi, third = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return _Parsed(ma, mi, third, "", int(m.group(6)), third)
    if (m := _FULL_9.match(s)) and build is None and int(m.group(1)) >= 9:
        ma, mi, third = int(m.group(1)), int(m.group(2)), int(m.group(3))
        patch = m.group(4).zfill(4) if m.group(4).strip("0") else ""
        return _Parsed(ma, mi, third, patch, int(m.group(5)), third)
    if (m := _SHORT_BUILD.match(s)) and build is None:
        third = int(m.group(3))
        return _Parsed(int(m.group(1)), int(m.group(2)), third, "", int(m.group(4)), third)
    if (m := _DOTTED_FORM.match(s)):
        ma, mi, third = int(m.group(1)), int(m.group(2)), int(m.group(3))
        fourth, fifth = m.group(4), m.group(5)
        if fourth is not None and len(fourth) >= 5 and fifth is None:  # 9.0.0.24755229: the build in 4th place
            fifth, fourth = fourth, None
        if fourth is not None and ma < 9:
            return None  # x.y.z.w is the 9.x scheme only
        if fifth is not None:
            if build is not None and int(fifth) != build:
                return None
            build = int(fifth)
        patch = fourth.zfill(4) if fourth and fourth.strip("0") else ""
        return _Parsed(ma, mi, third, patch, build, third)
    return None


def parse_esx_version(text: str) -> EsxVersion | None:
    """The notation's shape only (no check that it exists); None when it is not a version."""
    p = _parse(text)
    if p is None:
        return None
    return EsxVersion(p.major, p.minor, p.update or 0, p.patch, p.build)


@dataclass(frozen=True)
class Resolved:
    flavor: str  # the architecture: "esx" = classic (service console), "esxi" = vmkernel only (ESX 9 included)
    version: EsxVersion | None
    error: str | None = None


def _canon(flavor: str, ma: int, mi: int, up: int) -> str:
    return str(EsxVersion(ma, mi, up))


def known_notations(flavor: str) -> list[str]:
    """Every release and update of a product line in canonical notation (the did-you-mean candidates)."""
    out = []
    for ma, mi in releases.releases_of(flavor):
        out += [_canon(flavor, ma, mi, u.number) for u in releases.updates(flavor, ma, mi)]
    return out


def update_list(flavor: str, ma: int, mi: int) -> str:
    ups = releases.updates(flavor, ma, mi)
    if ma >= 9:
        return ", ".join(_canon(flavor, ma, mi, u.number) for u in ups)
    return ", ".join(f"{ma}.{mi} (GA)" if u.number == 0 else _canon(flavor, ma, mi, u.number) for u in ups)


def _nearest_update(flavor: str, ma: int, mi: int, up: int) -> int:
    nums = [u.number for u in releases.updates(flavor, ma, mi)]
    return min(nums, key=lambda n: (abs(n - up), -n))


def suggest(flavor: str, text: str) -> str | None:
    """The closest real notation to a misspelt one ("did you mean 8.0u2?")."""
    import difflib

    s = str(text).strip().lower().replace(" ", "")
    cands = known_notations(flavor if flavor in ("esx", "esxi") else "esxi")
    got = difflib.get_close_matches(s, cands, n=1, cutoff=0.6)
    return got[0] if got else None


def resolve_esx(flavor: str, text: str) -> Resolved:
    """Parse, normalise and check a topology's (flavor, version): the release and update must exist, a build must
    belong to them. `flavor: esx` with 9.x means VMware's new "ESX" (the vmkernel-only architecture)."""
    p = _parse(text)
    if p is None:
        hint = suggest(flavor, text)
        return Resolved(flavor, None, f"'{text}' is not a version (e.g. 3.5u5, 4.1, 6.7u3, 8.0 U3, 8.0.3, 9.0.0.0)"
                        + (f"; did you mean {hint}?" if hint else ""))
    ma, mi = p.major, p.minor
    arch = "esxi" if (ma, mi) >= (9, 0) else flavor
    rel = releases.updates(arch, ma, mi)
    if not rel:
        name = "ESX classic" if flavor == "esx" and (ma, mi) < (9, 0) else product_name(arch, (ma, mi))
        extra = ""
        if flavor == "esx" and (4, 1) < (ma, mi) < (9, 0):
            extra = " (ESX classic ended with 4.1; use flavor: esxi)"
        near = min(releases.releases_of(arch), key=lambda r: (abs((r[0] * 10 + r[1]) - (ma * 10 + mi)), r))
        return Resolved(flavor, None, f"{name} {ma}.{mi} does not exist: supported "
                        f"{', '.join(f'{a}.{b}' for a, b in releases.releases_of(arch))}{extra}"
                        + ("" if extra else f"; did you mean {near[0]}.{near[1]}?"))
    name = product_name(arch, (ma, mi))
    up = p.update
    if p.third is not None and ma < 7 and p.third != 0:
        good = _canon(arch, ma, mi, _nearest_update(arch, ma, mi, p.third))
        return Resolved(flavor, None, f"'{text}': {name} {ma}.{mi} hosts print {ma}.{mi}.0 for every update (the "
                        f"update is in the build number); write {ma}.{mi}uN — did you mean {good}?")
    if p.third is not None and ma < 7:
        up = None  # x.y.0: the update comes from the build, if any
    if p.build is not None:
        known = [k for k in releases.find_build(p.build) if k[0] == arch]
        if known and not any(k[1:3] == (ma, mi) for k in known):
            f, kma, kmi, kup, kname = known[0]
            return Resolved(flavor, None, f"build {p.build} is {product_name(f, (kma, kmi))} {kma}.{kmi} {kname}, "
                            f"not {name} {ma}.{mi}")
        mine = [k for k in known if k[1:3] == (ma, mi)]
        if mine:
            kup, kname = mine[0][3], mine[0][4]
            if up is not None and up != kup:
                return Resolved(flavor, None, f"build {p.build} is {name} {ma}.{mi} {kname}, not "
                                f"{_canon(arch, ma, mi, up)}")
            up = kup
            patch = p.patch or _patch_letter(kname)
            return Resolved(arch, EsxVersion(ma, mi, up, patch, p.build))
        line = releases.update_for_build(arch, ma, mi, p.build)
        if line is None:
            return Resolved(flavor, None, f"build {p.build} is older than {name} {ma}.{mi} GA "
                            f"(build {rel[0].build})")
        if up is None:
            up = line
        elif line < up:
            ga = next(u.build for u in rel if u.number == up)
            return Resolved(flavor, None, f"build {p.build} is older than {name} {_canon(arch, ma, mi, up)} "
                            f"(build {ga})")
    up = up or 0
    if up not in [u.number for u in rel]:
        what = f"maintenance release {ma}.{mi}.{up}" if ma >= 9 else f"Update {up}"
        good = _canon(arch, ma, mi, _nearest_update(arch, ma, mi, up))
        return Resolved(flavor, None, f"{name} {ma}.{mi} has no {what}: the real ones are "
                        f"{update_list(arch, ma, mi)} — did you mean {good}?")
    build = p.build
    if build is None and not p.patch:
        build = next(u.build for u in rel if u.number == up)
    elif build is None:  # a named patch (8.0u2c, 9.0.0.0100): its build when labctl knows it
        build = next((x.build for x in releases.PATCHES if (x.flavor, x.major, x.minor, x.update) == (arch, ma, mi, up)
                      and _patch_letter(x.name) == p.patch), None)
    return Resolved(arch, EsxVersion(ma, mi, up, p.patch, build))


def _patch_letter(name: str) -> str:
    """'8.0 U2c' -> 'c'; '9.0.0.0100' -> '0100'; 'GA'/'U3' -> ''."""
    if (m := re.match(r"^\d+\.\d+\.\d+\.(\d{4})$", name)):
        return m.group(1)
    m = re.match(r"^\d+\.\d+ U\d+([a-z])$", name)
    return m.group(1) if m else ""


def build_of(flavor: str, v: EsxVersion) -> int | None:
    """The build a host of this version reports: the one given, else the update's GA build."""
    if v.build is not None:
        return v.build
    arch = "esxi" if v.release >= (9, 0) else flavor
    return next((u.build for u in releases.updates(arch, v.major, v.minor) if u.number == v.update), None)


# The releases that exist per product line (ESX classic 3.5-4.1; ESXi 3.5-8.0 and ESX 9.x under "esxi").
SUPPORTED: dict[str, list[tuple[int, int]]] = {f: releases.releases_of(f) for f in ("esx", "esxi")}


def supported_list(flavor: str) -> str:
    return ", ".join(f"{a}.{b}" for a, b in releases.releases_of(flavor))


@dataclass(frozen=True)
class Minimums:
    cpus: int
    memory_mb: int
    disk_gb: int
    why: str


def minimums(flavor: str, v: EsxVersion) -> Minimums:
    """Installer minimums (the installer refuses to run below these)."""
    r = v.release
    if flavor == "esx" and r == (3, 5):
        return Minimums(1, 1024, 8, "ESX 3.5 needs 1 GB of memory and an 8 GB disk for the service console")
    if r < (5, 0):
        return Minimums(2, 2048, 8, f"{flavor.upper()} 4.x needs 2 CPUs and 2 GB of memory")
    if r < (6, 0):
        return Minimums(2, 2048, 4, "ESXi 5.x needs 2 CPUs and 2 GB of memory")
    if r < (7, 0):
        return Minimums(2, 4096, 4, "ESXi 6.x needs 2 CPUs and 4 GB of memory")
    if r < (8, 0):
        return Minimums(2, 4096, 8, "ESXi 7.0 needs 2 CPUs, 4 GB of memory and an 8 GB boot disk (32 GB recommended)")
    if r < (9, 0):
        return Minimums(2, 8192, 8, "ESXi 8.0 needs 2 CPUs, 8 GB of memory and an 8 GB boot disk (32 GB recommended)")
    # No ESX 9 installation guide figure was found in public sources; assumed the ESXi 8.0 guide's (two CPU
    # cores, 8 GB of RAM, a 32 GB boot disk), which VCF 9 upgrade checklists repeat for ESX 9 ("minimum 32 GB
    # system disk"). See docs/releases.md.
    return Minimums(2, 8192, 32, f"ESX {r[0]}.{r[1]} needs 2 CPU cores, 8 GB of memory and a 32 GB boot disk "
                                 "(the ESXi 8.0 guide's figures, assumed for 9.x)")


# guestOS identifiers (open-vm-tools guest_os_tables.h; govmomi VirtualMachineGuestOsIdentifier "VMkernel9
# indicates VMware ESXi 9.x") and the first Workstation release that offers each. vmkernel7/8/9 are documented
# ([H]/[M]); the older ones' first Workstation release is not documented and is an estimate [L].
GUEST_OS_SINCE: tuple[tuple[str, tuple[int, int]], ...] = (
    ("vmkernel", (6, 5)), ("vmkernel5", (8, 0)), ("vmkernel6", (11, 0)), ("vmkernel65", (12, 0)),
    ("vmkernel7", (15, 5)), ("vmkernel8", (16, 2)), ("vmkernel9", (25, 0)),
)


def guest_os_ids(ws: tuple[int, int]) -> list[str]:
    """The ESX guestOS identifiers a Workstation release offers."""
    return [gid for gid, since in GUEST_OS_SINCE if ws >= since]


def guest_os(flavor: str, v: EsxVersion, ws: tuple[int, int] | None = None) -> str:
    """The .vmx guestOS key for this ESX release; on a Workstation that lacks it, the newest one it offers."""
    r = v.release
    if r < (5, 0):
        key = "vmkernel"  # ESX 4.x; ESX 3.5 has no key of its own, period guides used vmkernel [L]
    elif r < (6, 0):
        key = "vmkernel5"
    elif r == (6, 0):
        key = "vmkernel6"
    elif r < (7, 0):
        key = "vmkernel65"
    elif r < (8, 0):
        key = "vmkernel7"
    elif r < (9, 0):
        key = "vmkernel8"
    else:
        key = "vmkernel9"
    if ws is not None:
        offered = guest_os_ids(ws)
        if offered and key not in offered:
            return offered[-1]
    return key


def template_era(flavor: str, v: EsxVersion) -> str:
    """Which template family renders this host: esx-classic, esxi-legacy (4–6.x), esxi-modern (7 and later)."""
    if flavor == "esx" or v.release < (4, 0):
        return "esx-classic"
    if v.release < (7, 0):
        return "esxi-legacy"
    return "esxi-modern"


def nic_device(flavor: str, v: EsxVersion) -> str:
    return "vmxnet3" if v.release >= (7, 0) else "e1000"


def scsi_device(flavor: str, v: EsxVersion) -> str:
    return "pvscsi" if v.release >= (6, 5) else "lsilogic"


def is_64bit_only(flavor: str, v: EsxVersion) -> bool:
    return v.release >= (4, 0)


# ---------------------------------------------------------------- the lab's vCenter


def vcenter_release(release: tuple[int, int]) -> tuple[int, int]:
    """The vCenter release that goes with a host release: VirtualCenter 2.5 managed ESX/ESXi 3.5, then vCenter kept
    the host's numbers (4.0, 4.1, 5.0 ... 8.0, 9.0)."""
    return (2, 5) if release < (4, 0) else release


def vcenter_api(v: EsxVersion) -> str:
    """The API version (ServiceContent.about.apiVersion) of the vCenter that matches this host version: '2.5' for
    ESX 3.5, '4.1', '6.5', '6.7.3' (6.7 U3), '8.0.2.0' (8.0 U2), '9.0.0.0'. vCenter 4.1 and older run the legacy AAM
    HA agents (das.isolationaddress, das.isolationaddress2 ...), 5.0 and later FDM (das.isolationaddress0 ...)."""
    ma, mi = vcenter_release(v.release)
    if (ma, mi) < (6, 7):
        return f"{ma}.{mi}"
    if (ma, mi) == (6, 7):
        return f"6.7.{v.update}" if v.update else "6.7"
    return f"{ma}.{mi}.{v.update}.0"


# ---------------------------------------------------------------- Workstation releases
#
# Numbered releases up to 17.6.x (6.0 ... 12, 14, 15, 16, 17.0/17.5/17.6), then calendar names: Workstation Pro
# 25H2 is internally version 25.0.0 (build 24995812, October 2025), 25H2u1 its first update; the update channel
# later offered "26H1u1" as version 26.0.1 (a public Workstation 25H2 lab log: installer
# VMware-Workstation-Full-25H2-24995812.exe, Help > About "Version 25.0.0", update offer "26.0.1 ... 26H1u1").
# Calendar releases map to (year, 0) for 25H2 and every H1, (year, 5) for later H2s [L]: only the order matters.

_WS_NUMBERED = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_WS_CALENDAR = re.compile(r"^(\d\d)H([12])(?:u(\d+))?$", re.IGNORECASE)
# which minor releases exist per major (None: any); 13 and 18-24 never existed
_WS_MINORS: dict[int, set[int] | None] = {
    6: {0, 5}, 7: {0, 1}, 8: None, 9: None, 10: None, 11: None, 12: None, 14: {0, 1}, 15: {0, 1, 5},
    16: {0, 1, 2}, 17: {0, 5, 6},
}

# The same set as one JSON Schema pattern (docs/topology.schema.json): tests check that schema and validate agree.
WS_VERSION_PATTERN = (
    r"^(?:6(?:\.[05](?:\.\d+)?)?|7(?:\.[01](?:\.\d+)?)?|(?:8|9|10|11|12)(?:\.\d+){0,2}|14(?:\.[01](?:\.\d+)?)?"
    r"|15(?:\.[015](?:\.\d+)?)?|16(?:\.[012](?:\.\d+)?)?|17(?:\.[056](?:\.\d+)?)?"
    r"|25[Hh]2(?:[Uu]\d+)?|(?:2[6-9]|[3-9]\d)[Hh][12](?:[Uu]\d+)?)$"
)


def parse_ws_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of a Workstation release that exists, or None: 6.5, 7.1, 16.2.4, 17.6, 25H2, 25H2u1, 26H1."""
    s = str(text)
    if not re.fullmatch(WS_VERSION_PATTERN, s):
        return None
    if (m := _WS_CALENDAR.match(s)):
        year, half = int(m.group(1)), int(m.group(2))
        if (year, half) < (25, 2):
            return None  # calendar names began with 25H2
        return (year, 0) if half == 1 or year == 25 else (year, 5)
    if (m := _WS_NUMBERED.match(s)):
        major, minor = int(m.group(1)), int(m.group(2) or 0)
        allowed = _WS_MINORS.get(major, set())
        if allowed is not None and minor not in allowed:
            return None
        return major, minor
    return None


def ws_label(ws: tuple[int, int]) -> str:
    if ws >= (25, 0):
        return f"{ws[0]}H{'2' if ws == (25, 0) or ws[1] == 5 else '1'}"
    return f"{ws[0]}.{ws[1]}"


def hw_version(ws: tuple[int, int]) -> int | None:
    """virtualHW.version written by a Workstation release (workstation.md section 2)."""
    major, minor = ws
    if major < 6:
        return None
    if major == 6:
        return 6 if minor < 5 else 7
    if major == 7:
        return 7
    if 8 <= major <= 12:
        return major
    if major == 13 or 18 <= major <= 24:
        return None  # there is no Workstation 13, nor 18-24 (17.6 was followed by 25H2)
    if major == 14:
        return 14
    if major == 15:
        return 16
    if major == 16:
        return 19 if minor >= 2 else 18
    if major == 17:
        return 21 if minor >= 5 else 20  # 17.5 and 17.6 write hw 21 [M]
    return 22  # 25H2 writes hw 22 (vSphere 9's virtual hardware); later calendar releases open hw 22 VMs


def has_vhv(ws: tuple[int, int]) -> bool:
    """Workstation 8+ can expose VT-x/AMD-V to the guest (vhv.enable)."""
    return ws[0] >= 8


def guest_support_problem(flavor: str, v: EsxVersion, ws: tuple[int, int]) -> tuple[str, str] | None:
    """(severity, reason) when this Workstation release cannot (or may not) run this ESX release."""
    label = f"{product_name(flavor, v)} {v}"
    wsl = ws_label(ws)
    if ws < (6, 5) and v.release != (3, 5):
        return ("error", f"{label} needs Workstation 6.5 or later (the first release that runs ESX as a guest)")
    if v.release >= (5, 0) and not has_vhv(ws):
        return ("error", f"64-bit {label} needs nested virtualization (vhv.enable), which Workstation {wsl} "
                         "does not have: use Workstation 8 or later")
    if v.release >= (9, 0) and ws < (25, 0):
        return ("warning", f"Workstation {wsl} has no guestOS for {label} (vmkernel9 came with 25H2): labctl writes "
                           f"{guest_os(flavor, v, ws)} and virtual hardware {hw_version(ws)}; use Workstation 25H2 "
                           "or later for ESX 9")
    if v.release >= (8, 0) and ws < (16, 2):
        return ("warning", f"Workstation {wsl} has no guestOS for {label} (vmkernel8 came with 16.2/17); "
                           "the installer may refuse the virtual hardware")
    if v.release >= (7, 0) and ws < (15, 5):
        return ("warning", f"Workstation {wsl} has no guestOS for {label} (vmkernel7 came with 15.5); "
                           "use Workstation 15.5 or later")
    if v.release >= (6, 5) and ws < (12, 0):
        return ("warning", f"{label} wants virtual hardware 11+ (Workstation 12 or later)")
    return None


# ESX 9 discontinued CPUs that ESXi 8 still ran: its installer stops with "CPU_SUPPORT ERROR: The CPU on this
# host is not supported by ESXi 9.1.0 ... Please refer to KB 82794" (a public Workstation 25H2 lab log, Core
# i5-4430); booting the installer with `allowLegacyCPU=true` (Shift+O) turns the error into a warning, and
# vmware/Holodeck 9.0 writes the option into boot.cfg of nested ESX hosts "for supporting Legacy CPU use case".
CPU_DEPRECATION_KB = "KB 82794"
