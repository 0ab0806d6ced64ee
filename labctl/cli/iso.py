"""`labctl iso inspect|build`: know an installer ISO; make the patched copy and the kickstart CD."""

from __future__ import annotations

import argparse

from labctl.errors import ExitStatus, LabctlError, UsageError

DESCRIPTION = ("Installer ISOs: what an image is (ESXi / ESX classic installer, version, build, boot entries, "
               "kickstart), and an unattended-install copy of it with its kickstart CD.")
EPILOG = """\
examples:
  labctl iso inspect ~/isos/VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso
  labctl iso inspect ESX-3.5.0-64607.iso --json
  labctl iso build VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso --kickstart esx1.cfg -o isos/
  labctl iso build ESXi-7.0U3.iso --kickstart ks.cfg --boot-option allowLegacyCPU=true -o isos/
  LAB_ROOT_PW=... labctl iso build lab.yaml --host esx1 -o isos/   the host's iso, its kickstart, its boot_options

what `build` writes (the original ISO is never changed):
  DIR/NAME.ks-HASH.iso        a copy of the installer whose BOOT.CFG and EFI/BOOT/BOOT.CFG (ESXi 5.0+) or
                              isolinux append line (ESX 3.5/4.x) say ks=cdrom:/KS.CFG plus the boot options;
                              both El Torito entries (BIOS, UEFI) unchanged. HASH is of the source's content and
                              the patch: the same build again reuses it. Attach it as the first CD-ROM.
  DIR/KS-NAME.iso             a small CD with your kickstart as KS.CFG (volume LABCTL-KS): the second CD-ROM.
                              With a topology FILE and --host NAME: the host's own kickstart (labctl kickstart
                              FILE NAME shows it), with the root password from ssh.password_env (or a prompt) as
                              a crypt hash, and KS-NAME.iso named after the host.
  Both are mode 0600 (a kickstart carries the root password's hash).

exit statuses: 0 ok, 2 missing or unreadable file, not an ESX installer, bad option, 3 cannot write DIR.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="iso_command", metavar="ACTION", required=True)
    i = sub.add_parser("inspect", help="kind, version, build, volume id, boot entries, kickstart of an ISO",
                       description="Read an ISO image (metadata only) and say what it is.",
                       epilog=EPILOG, formatter_class=parser.formatter_class)
    i.add_argument("iso", metavar="ISO")
    i.add_argument("--json", action="store_true",
                   help="one JSON object: kind, version, build, volume_id, boot, kickstart")
    b = sub.add_parser("build", help="write the patched installer ISO and the kickstart ISO",
                       description="Patch a copy of the installer ISO to boot into ks=cdrom:/KS.CFG and write "
                                   "the kickstart CD that carries KS.CFG.",
                       epilog=EPILOG, formatter_class=parser.formatter_class)
    b.add_argument("iso", metavar="ISO", help="the installer ISO as downloaded (read only), or a topology FILE "
                                               "with --host")
    b.add_argument("--host", metavar="NAME", help="with a topology FILE: that host's iso, kickstart and boot_options")
    b.add_argument("--kickstart", metavar="KS.CFG", help="the kickstart file to put on the CD (with an ISO)")
    b.add_argument("--templates", metavar="DIR", help="with --host: a template directory overriding labctl's")
    b.add_argument("--boot-option", action="append", default=[], metavar="WORD", dest="boot_options",
                   help="an extra kernel boot option, e.g. allowLegacyCPU=true (repeatable)")
    b.add_argument("-o", "--output", required=True, metavar="DIR", help="where both ISOs go (created if needed)")
    b.add_argument("--json", action="store_true", help="print the paths as JSON")


def run(args: argparse.Namespace, env) -> ExitStatus:
    if args.iso_command == "inspect":
        return _inspect(args, env)
    if args.iso_command == "build":
        return _build(args, env)
    raise UsageError(f"unknown action {args.iso_command!r}")


def _clean(text: str) -> str:
    """Text from the image, safe for a terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _inspect(args, env) -> ExitStatus:
    import json

    from labctl.iso.image import inspect_iso

    info = inspect_iso(env.path(args.iso))
    doc = info.to_json()
    if args.json:
        env.out(json.dumps(doc, indent=2))
        return ExitStatus.SUCCESS
    env.out(_clean(str(info.path)))
    rows = [("kind", doc["kind"]), ("version", doc["version"] or "-"), ("build", doc["build"] or "-"),
            ("volume id", doc["volume_id"]), ("boot", ", ".join(doc["boot"]) or "not bootable"),
            ("kickstart", doc["kickstart"] or "none")]
    for k, v in rows:
        env.out(f"  {k:<10} {_clean(v)}")
    return ExitStatus.SUCCESS


def _from_topology(args, env, out):
    """(installer ISO, kickstart text, name, boot options) of `--host` in the topology FILE."""
    from pathlib import Path

    from labctl.iso.image import IsoError, inspect_iso
    from labctl.iso.kickstart import read_kickstart_iso
    from labctl.render import kickstart
    from labctl.render.cryptpw import MASK
    from labctl.topology import load_topology

    topo = load_topology(env.path(args.iso), display_name=args.iso)
    host = kickstart.host_named(topo, args.host, args.iso)
    tdir = env.path(args.templates) if args.templates else None
    kickstart.render_kickstart(topo, host, MASK, tdir)  # a clone, kickstart: none, ESXi 3.5/4.0: refused here
    if not host.iso:
        raise UsageError(f"{host.name} has no iso in {args.iso}", hint="add iso: PATH (the installer) to the host")
    info = inspect_iso(host.iso)
    if info.version is not None and info.version.release != host.version_info.release:
        raise UsageError(f"{host.iso} is ESX {info.version} but {host.name} is {host.label}",
                         hint="give the host the ISO of its version, or its version the ISO's")
    previous = None
    ks_iso = out / f"KS-{host.name}.iso"
    if ks_iso.is_file():
        try:
            previous = kickstart.hash_in((read_kickstart_iso(ks_iso) or b"").decode("utf-8", "replace"))
        except IsoError:
            previous = None
    hashed = kickstart.root_password_hash(topo, host, env.environ, env.secret_prompt(), previous=previous)
    text = kickstart.render_kickstart(topo, host, hashed, tdir)
    return Path(host.iso), text, host.name, [*host.install.boot_options, *args.boot_options]


def _build(args, env) -> ExitStatus:
    import json

    from labctl.iso.kickstart import write_kickstart_iso
    from labctl.iso.patch import build_patched

    out = env.path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {args.output}: not a directory", hint="give the directory both ISOs go to")
    if args.host:
        if args.kickstart:
            raise UsageError("--kickstart and --host exclude each other: --host renders the host's own kickstart")
        src, ks, name, options = _from_topology(args, env, out)
    else:
        if not args.kickstart:
            raise UsageError("iso build ISO needs --kickstart KS.CFG",
                             hint="or give a topology FILE and --host NAME to use that host's kickstart")
        src = env.path(args.iso)
        ks_path = env.path(args.kickstart)
        try:
            ks = ks_path.read_bytes()
        except OSError as e:
            raise UsageError(f"{args.kickstart}: cannot read the kickstart: {e.strerror}") from None
        name, options = ks_path.stem, args.boot_options
    ks_iso = out / f"KS-{name}.iso"
    try:
        res = build_patched(src, out, options)
        wrote = write_kickstart_iso(ks_iso, ks)
    except OSError as e:
        raise LabctlError(f"cannot write to {out}: {e.strerror or e}", status=ExitStatus.FAILED) from None
    if args.json:
        env.out(json.dumps({"installer": str(res.path), "installer_status": res.method,
                            "kickstart_iso": str(ks_iso), "kickstart_status": "written" if wrote else "unchanged",
                            "iso": res.info.to_json()}, indent=2))
        return ExitStatus.SUCCESS
    how = {"cached": "unchanged: same source and patch", "in-place": "written", "rewrite": "written"}[res.method]
    env.out(f"installer  {res.path}  ({how})")
    env.out(f"kickstart  {ks_iso}  ({'written' if wrote else 'unchanged'})")
    return ExitStatus.SUCCESS
