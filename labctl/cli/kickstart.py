"""labctl kickstart FILE HOST"""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Print the kickstart (installation script) labctl makes for HOST from templates/kickstart/ for its ESX era:
ESX 3.5 and 4.x (Anaconda with VMware's commands, %post), ESXi 4.1 (autopart), ESXi 5.0 - 8.x and ESX 9
(install --firstdisk, %firstboot). It sets the host's static management address and hostname, turns SSH on,
prepares a host that has linked clones (Net.FollowHardwareMac=1, no /system/uuid), and runs the topology's
install.firstboot lines. The root password hash is shown masked: rootpw --iscrypted ********.

With --write, the kickstart with the real hash is written to <vm_dir>/.labctl/kickstart/HOST.ks.cfg (mode
0600, atomic). The root password comes from the variable named by ssh.password_env, or from a prompt on a
terminal; only its crypt hash ($1$ MD5 up to ESXi 5.x, $6$ SHA-512 from ESXi 6.0) is ever written."""

EPILOG = """\
examples:
  labctl kickstart topologies/esxi8-ha-trio.yaml esxi-a                 look at the kickstart of esxi-a
  labctl kickstart topologies/esx35-ha-pair.yaml esx1 --templates my/   your kickstart/<era>.ks.j2 wins
  labctl kickstart topologies/esxi8-ha-trio.yaml esxi-a --json          era, hash scheme and text as JSON
  LAB_ROOT_PW=... labctl kickstart lab.yaml esx1 --write               write it (0600) for an install

exit status: 0 printed (or written), 2 topology error, unknown host, a host without a scripted install
(a linked clone, kickstart: none, ESXi 3.5/4.0) or no password for --write, 5 refused to overwrite (--force)."""


def configure(p) -> None:
    p.add_argument("file", metavar="FILE", help="topology YAML")
    p.add_argument("host", metavar="HOST", help="an ESX host of the topology (not a linked clone)")
    p.add_argument("--templates", metavar="DIR", help="a template directory whose files override labctl's")
    p.add_argument("--write", action="store_true",
                   help="write <vm_dir>/.labctl/kickstart/HOST.ks.cfg with the real hash (needs the root password)")
    p.add_argument("--force", action="store_true", help="with --write: overwrite a kickstart edited since")
    p.add_argument("--json", action="store_true",
                   help="one JSON object: host, era, hash scheme, path (with --write) and the masked kickstart")


def run(args, env) -> ExitStatus:
    from labctl.render import kickstart
    from labctl.render.cryptpw import MASK
    from labctl.topology import load_topology

    topo = load_topology(env.path(args.file), display_name=args.file)
    for w in topo.warnings:
        env.err(w)
    host = kickstart.host_named(topo, args.host, args.file)
    tdir = env.path(args.templates) if args.templates else None
    kickstart.render_kickstart(topo, host, MASK, tdir)  # refuses (clone, none, no scripted install) first
    hkey, keys = _keys(topo, host)
    text = kickstart.mask(kickstart.render_kickstart(topo, host, MASK, tdir, host_key=hkey, authorized_keys=keys))
    path = None
    if args.write:
        try:
            previous = kickstart.hash_in(kickstart.kickstart_path(topo, host).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            previous = None
        hashed = kickstart.root_password_hash(topo, host, env.environ, env.secret_prompt(), previous=previous)
        path = kickstart.write_kickstart(topo, host, hashed, template_dir=tdir, force=args.force, host_key=hkey,
                                         authorized_keys=keys)
    if args.json:
        import json

        from labctl.render.cryptpw import scheme_for

        env.out(json.dumps({"host": host.name, "era": kickstart.era(host),
                            "template": str(host.install.template) if host.install.template else None,
                            "scheme": scheme_for(host.flavor, host.version_info.release),
                            "path": str(path) if path else None, "kickstart": text}, indent=2))
    else:
        env.out(str(path) if path else text.rstrip("\n"))
    return ExitStatus.SUCCESS


def _keys(topo, host):
    """What `labctl up` puts in this host's kickstart besides the hash: the host key it made (when it has made it
    already: this command makes none) and root's authorized key (ssh.key_file's .pub)."""
    from labctl.errors import UsageError
    from labctl.plan import media
    from labctl.render.hostkey import read_host_key

    try:
        key = media.authorized_key(topo, host, None, create=False)
    except UsageError:
        key = None
    return read_host_key(media.install_dir(topo, host)), [key] if key else []
