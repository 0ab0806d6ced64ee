"""Topology text for the lifecycle tests: the 2010 ESX 3.5 pair behind a jump host."""

from __future__ import annotations

from pathlib import Path


def topology_text(vm_dir: Path) -> str:
    return f"""\
lab: sim-test-pair
workstation: {{version: "7.1", vm_dir: {vm_dir}}}
networks:
  - {{name: lan, type: lan-segment, subnet: 192.168.69.0/24}}
esx_hosts:
  - name: esx1
    flavor: esx
    version: "3.5u5"
    cpus: 2
    memory_mb: 2048
    disk_gb: 16
    nics: [lan]
    management: {{network: lan, ip: 192.168.69.11}}
  - name: esx2
    linked_clone_of: esx1
    management: {{network: lan, ip: 192.168.69.12}}
ssh: {{user: root, password_env: LAB_ESX_PASSWORD, jump: "labuser@192.168.69.5"}}
"""
