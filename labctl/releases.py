"""Product facts: every ESX/ESXi release and update that exists, with its build number, and the Workstation
releases labctl knows. Pure data, importable from every layer (the topology checks, the renderer and the host
simulator all read the same table).

Sources (see tests/topology/data/releases.yaml for the per-row citations the tests check against):
- [WS]  wireshark/wireshark epan/dissectors/packet-vmware-hb.c, the build-number table (4.0 to 8.0 U2c), itself
        taken from VMware KB 2143832 "Build numbers and versions of VMware ESXi/ESX" (now Broadcom KB 316595).
- [RN9] Broadcom techdocs release notes, as crawled in bet0x/broadcom_crawler
        (docs/vmware-cloud-foundation/9.0/release_notes/: esx.md = ESX 9.0.1.0 build 24957456,
        vmware_esx_9000100_release_notes.md = ESX 9.0.0.0100 build 24813472, bill_of_materials = 9.0.0.0 24755229).
- [KB395110] Broadcom KB 395110 "Unified VCF Versioning in ESXi Release": 8.x full versions look like
        8.0.2-0.40.23825572 (8.0 U2c); from 9.0 <major>.<minor>.<maintenance>.<EEHH>.<build>, no "Update N" names,
        and VIB versions may keep a hyphen (9.0.1-0101.12345678).
- [PUB] public depot/ISO file names and host captures for 9.0.2.0 (25148076), 9.1.0.0 (25370933),
        9.1.0.0100 (25433460), 9.1.1.0 (25714478); 8.0 U3 (24022510).
- [KB1014508] ESX/ESXi 3.5 update builds (ESX 3.5 GA 64607 ... U5 207095) [M]: the 3.5 rows are the long-known
        KB figures; no machine-readable public table was found for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Update:
    """One update (<= 8.x: "Update N"; 9.x: a maintenance release N) of a release, with its GA build."""
    number: int
    build: int
    date: str  # YYYY-MM-DD of the release where a source gives it, else ""


# (flavor, major, minor) -> the updates that exist, GA first. ESX classic (service console) is 3.5-4.1 only;
# ESX 4.0/4.1 classic and ESXi 4.0/4.1 share their builds. "esxi" 9.x is VMware's "ESX" 9 (renamed back, 2025).
RELEASES: dict[tuple[str, int, int], tuple[Update, ...]] = {
    ("esx", 3, 5): (Update(0, 64607, "2007-12-10"), Update(1, 82663, "2008-04-10"), Update(2, 110268, "2008-07-25"),
                    Update(3, 123630, "2008-11-06"), Update(4, 153875, "2009-03-30"), Update(5, 207095, "2009-12-03")),
    ("esxi", 3, 5): (Update(0, 67921, "2007-12-31"), Update(1, 82664, "2008-04-10"), Update(2, 110271, "2008-07-25"),
                     Update(3, 123629, "2008-11-06"), Update(4, 153875, "2009-03-30"), Update(5, 207095, "2009-12-03")),
    ("esx", 4, 0): (Update(0, 164009, "2009-05-21"), Update(1, 208167, "2009-11-19"), Update(2, 261974, "2010-06-10"),
                    Update(3, 398348, "2011-05-05"), Update(4, 504850, "2011-11-17")),
    ("esx", 4, 1): (Update(0, 260247, "2010-07-13"), Update(1, 348481, "2011-02-10"), Update(2, 502767, "2011-10-27"),
                    Update(3, 800380, "2012-08-30")),
    ("esxi", 5, 0): (Update(0, 469512, "2011-08-24"), Update(1, 623860, "2012-03-15"), Update(2, 914586, "2012-12-20"),
                     Update(3, 1311175, "2013-10-17")),
    ("esxi", 5, 1): (Update(0, 799733, "2012-09-10"), Update(1, 1065491, "2013-04-25"), Update(2, 1483097, "2014-01-16"),
                     Update(3, 2323236, "2014-12-04")),
    ("esxi", 5, 5): (Update(0, 1331820, "2013-09-22"), Update(1, 1623387, "2014-03-11"), Update(2, 2068190, "2014-09-09"),
                     Update(3, 3029944, "2015-09-16")),
    ("esxi", 6, 0): (Update(0, 2494585, "2015-03-12"), Update(1, 3029758, "2015-09-10"), Update(2, 3620759, "2016-03-15"),
                     Update(3, 5050593, "2017-02-24")),
    ("esxi", 6, 5): (Update(0, 4564106, "2016-11-15"), Update(1, 5969303, "2017-07-27"), Update(2, 8294253, "2018-05-03"),
                     Update(3, 13932383, "2019-07-02")),
    ("esxi", 6, 7): (Update(0, 8169922, "2018-04-17"), Update(1, 10302608, "2018-10-16"), Update(2, 13006603, "2019-04-11"),
                     Update(3, 14320388, "2019-08-20")),
    ("esxi", 7, 0): (Update(0, 15843807, "2020-04-02"), Update(1, 16850804, "2020-10-06"), Update(2, 17630552, "2021-03-09"),
                     Update(3, 18644231, "2021-10-05")),
    ("esxi", 8, 0): (Update(0, 20513097, "2022-10-11"), Update(1, 21495797, "2023-04-18"), Update(2, 22380479, "2023-09-21"),
                     Update(3, 24022510, "2024-06-25")),
    ("esxi", 9, 0): (Update(0, 24755229, "2025-06-17"), Update(1, 24957456, "2025-09-29"), Update(2, 25148076, "2026-01-20")),
    ("esxi", 9, 1): (Update(0, 25370933, ""), Update(1, 25714478, "")),
}
RELEASES[("esxi", 4, 0)] = RELEASES[("esx", 4, 0)]
RELEASES[("esxi", 4, 1)] = RELEASES[("esx", 4, 1)]


@dataclass(frozen=True)
class Patch:
    """A known patch build on top of an update (express patches, letter releases): the build-qualified notations
    hosts print name these."""
    flavor: str
    major: int
    minor: int
    update: int
    name: str  # "8.0 U2c", "9.0.0.0100"
    build: int
    full: str  # the full version string ([KB395110] notation)


PATCHES: tuple[Patch, ...] = (
    Patch("esxi", 8, 0, 2, "8.0 U2b", 23305546, "8.0.2-0.30.23305546"),
    Patch("esxi", 8, 0, 2, "8.0 U2c", 23825572, "8.0.2-0.40.23825572"),
    Patch("esxi", 8, 0, 3, "8.0 U3e", 24674464, "8.0.3-0.70.24674464"),
    Patch("esxi", 7, 0, 3, "7.0 U3c", 19193900, "7.0.3-0.20.19193900"),  # a host prints "Patch: 20" [PUB]
    Patch("esxi", 9, 0, 0, "9.0.0.0100", 24813472, "9.0.0-0100.24813472"),
    Patch("esxi", 9, 1, 0, "9.1.0.0100", 25433460, "9.1.0-0100.25433460"),  # full string by the 9.x pattern [M]
)


def releases_of(flavor: str) -> list[tuple[int, int]]:
    return sorted({(ma, mi) for (f, ma, mi) in RELEASES if f == flavor})


def updates(flavor: str, major: int, minor: int) -> tuple[Update, ...]:
    return RELEASES.get((flavor, major, minor), ())


def find_build(build: int) -> list[tuple[str, int, int, int, str]]:
    """Every (flavor, major, minor, update, name) a build number is known as (an update GA or a patch)."""
    out = []
    for (f, ma, mi), ups in RELEASES.items():
        for u in ups:
            if u.build == build:
                out.append((f, ma, mi, u.number, "GA" if u.number == 0 else f"U{u.number}"))
    for p in PATCHES:
        if p.build == build:
            out.append((p.flavor, p.major, p.minor, p.update, p.name))
    return out


def update_for_build(flavor: str, major: int, minor: int, build: int) -> int | None:
    """The update line a build of this release belongs to: the latest update whose GA build is not newer
    (patches are built after the update they sit on). None when the build predates the release's GA."""
    line = None
    for u in updates(flavor, major, minor):
        if u.build <= build:
            line = u.number
    return line

