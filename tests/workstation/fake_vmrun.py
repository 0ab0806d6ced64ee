"""A fake `vmrun` executable for driver tests (installed into a tmp dir that is put first on PATH).

It records every call (argv after the program name) as one JSON line in $FAKE_VMRUN_LOG, keeps a little state in
$FAKE_VMRUN_STATE (running VMs, snapshots per VM) and answers with real vmrun texts:
`Total running VMs: N`, `Total snapshots: N`, `Error: The virtual machine is not powered on: <vmx>`,
`Error: Cannot open VM: <vmx>, The virtual machine cannot be found`, `Error: Invalid snapshot name '<name>'`,
`readVariable VMX guestVar NAME` answers the .vmx's `NAME` key of a running VM (an empty line when unset),
exit 255 on errors. $FAKE_VMRUN_SCRIPT (optional) is a JSON list of canned answers
`{"command": "snapshot", "stdout": "...", "exit": 0, "sleep": 0}` consumed in order by the first call that matches
— that is how a test makes vmrun report an error with exit 0, or hang.
"""

import json
import os
import sys
import time
from pathlib import Path


def load(path, default):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return default


def main(argv):
    with open(os.environ["FAKE_VMRUN_LOG"], "a") as f:
        f.write(json.dumps(argv) + "\n")
    state_path = os.environ["FAKE_VMRUN_STATE"]
    state = load(state_path, {"running": [], "snapshots": {}})
    script_path = os.environ.get("FAKE_VMRUN_SCRIPT")
    if len(argv) < 3 or argv[0] != "-T" or argv[1] != "ws":
        print("Error: Unrecognized host type (expected -T ws)")
        return 255
    cmd, rest = argv[2], argv[3:]
    if script_path:
        script = load(script_path, [])
        for i, canned in enumerate(script):
            if canned["command"] == cmd:
                del script[i]
                Path(script_path).write_text(json.dumps(script))
                time.sleep(canned.get("sleep", 0))
                sys.stdout.write(canned.get("stdout", ""))
                return canned.get("exit", 0)

    def save():
        Path(state_path).write_text(json.dumps(state))

    def cannot_open(vmx):
        print(f"Error: Cannot open VM: {vmx}, The virtual machine cannot be found")
        return 255

    if cmd == "list":
        print(f"Total running VMs: {len(state['running'])}")
        for vmx in state["running"]:
            print(vmx)
        return 0
    vmx = rest[0] if rest else ""
    if not Path(vmx).is_file():
        return cannot_open(vmx)
    if cmd == "start":
        if vmx not in state["running"]:
            state["running"].append(vmx)
        save()
        return 0
    if cmd == "stop":
        if vmx not in state["running"]:
            print(f"Error: The virtual machine is not powered on: {vmx}")
            return 255
        state["running"].remove(vmx)
        save()
        return 0
    if cmd == "snapshot":
        state["snapshots"].setdefault(vmx, []).append(rest[1])
        save()
        return 0
    if cmd == "listSnapshots":
        snaps = state["snapshots"].get(vmx, [])
        print(f"Total snapshots: {len(snaps)}")
        for s in snaps:
            print(s)
        return 0
    if cmd == "getGuestIPAddress":
        if vmx not in state["running"]:
            print(f"Error: The virtual machine is not powered on: {vmx}")
            return 255
        print("192.0.2.10")
        return 0
    if cmd == "readVariable":
        if vmx not in state["running"]:
            print(f"Error: The virtual machine is not powered on: {vmx}")
            return 255
        if len(rest) != 3 or rest[1] not in ("guestVar", "runtimeConfig", "guestEnv"):
            print("Error: Invalid argument")  # wording not confirmed [L]
            return 255
        want = rest[2].lower()
        value = ""  # an unset variable: an empty line, exit 0
        for line in Path(vmx).read_text().splitlines():
            key, sep, val = line.partition("=")
            if sep and key.strip().lower() == want:
                value = val.strip().strip('"')
        print(value)
        return 0
    if cmd == "deleteVM":
        for p in Path(vmx).parent.iterdir():
            p.unlink()
        Path(vmx).parent.rmdir()
        return 0
    if cmd == "clone":
        dst, mode = rest[1], rest[2]
        opts = dict(a.lstrip("-").split("=", 1) for a in rest[3:])
        snap = opts.get("snapshot")
        if mode == "linked" and snap not in state["snapshots"].get(vmx, []):
            print(f"Error: Invalid snapshot name '{snap}'")
            return 255
        text = Path(vmx).read_text()
        lines = [ln for ln in text.splitlines() if not ln.startswith("displayName")]
        lines.append(f'displayName = "{opts.get("cloneName", Path(dst).stem)}"')
        Path(dst).write_text("\n".join(lines) + "\n")
        if mode == "linked":
            Path(dst).with_suffix(".vmsd").write_text(
                f'.encoding = "UTF-8"\ncloneOf0 = "{vmx}"\nnumCloneOf = "1"\n'
            )
        return 0
    print(f"Error: Unrecognized command: {cmd}")
    return 255


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
