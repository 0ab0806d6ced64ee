"""Facts: a command per flavour/version plus a pure parser (see `base.Fact`).

`FACTS` lists every fact by name; the data-file test runner (tests/remote/facts/<name>/<case>.json) uses it.
"""

from __future__ import annotations

from labctl.remote.facts.base import Fact, FactParseError, Platform, normalize_mac
from labctl.remote.facts.classic import IfcfgFile, Ifconfig, VswifList4, VswifList35
from labctl.remote.facts.esxcli import AdvancedSettings, AdvcfgGet, IpInterfaceList, NicList, SystemUuid
from labctl.remote.facts.esxconf import EsxConfFile
from labctl.remote.facts.vmknic import VmknicList5, VmknicList6

FACTS: dict[str, Fact] = {
    f.name: f
    for f in (
        VswifList35(),
        VswifList4(),
        IfcfgFile(),
        Ifconfig(),
        VmknicList5(),
        VmknicList6(),
        IpInterfaceList(),
        NicList(),
        SystemUuid(),
        AdvancedSettings(),
        AdvcfgGet(),
        EsxConfFile(),
    )
}

__all__ = ["FACTS", "Fact", "FactParseError", "Platform", "normalize_mac"]
