"""BOOT.CFG and ISOLINUX.CFG text patching: only kernelopt / the install label's append line change."""

from __future__ import annotations

import pytest

from labctl.iso import bootcfg

ESXI8 = ("bootstate=0\ntitle=Loading ESXi installer\ntimeout=5\nprefix=\nkernel=/b.b00\n"
         "kernelopt=runweasel cdromBoot\nmodules=/jumpstrt.gz --- /useropts.gz\nbuild=8.0.2-0.0.22380479\nupdated=0\n")


def test_kernelopt_gets_ks_and_options_everything_else_kept():
    out = bootcfg.patch_bootcfg(ESXI8, ["allowLegacyCPU=true"])
    assert "kernelopt=runweasel cdromBoot ks=cdrom:/KS.CFG allowLegacyCPU=true\n" in out
    assert out.replace("kernelopt=runweasel cdromBoot ks=cdrom:/KS.CFG allowLegacyCPU=true",
                       "kernelopt=runweasel cdromBoot") == ESXI8
    assert bootcfg.bootcfg_kickstart(out) == "cdrom:/KS.CFG"


def test_patch_is_idempotent_and_replaces_an_old_ks():
    once = bootcfg.patch_bootcfg(ESXI8, ["allowLegacyCPU=true", "noIOMMU"])
    assert bootcfg.patch_bootcfg(once, ["allowLegacyCPU=true", "noIOMMU"]) == once
    other = ESXI8.replace("cdromBoot", "cdromBoot ks=usb:/OLD.CFG allowLegacyCPU=false")
    out = bootcfg.patch_bootcfg(other, ["allowLegacyCPU=true"])
    assert "ks=usb:/OLD.CFG" not in out and "allowLegacyCPU=false" not in out
    assert out.count("ks=") == 1 and "allowLegacyCPU=true" in out


def test_crlf_and_missing_kernelopt():
    crlf = ESXI8.replace("\n", "\r\n")
    assert bootcfg.patch_bootcfg(crlf, []).count("\r\n") == crlf.count("\r\n")
    no_opt = "title=x\nkernel=/tboot.b00\nmodules=/b.b00\n"
    assert bootcfg.patch_bootcfg(no_opt, []) == "title=x\nkernel=/tboot.b00\nkernelopt=ks=cdrom:/KS.CFG\nmodules=/b.b00\n"
    with pytest.raises(ValueError, match="no kernel= line"):
        bootcfg.patch_bootcfg("title=x\n", [])


@pytest.mark.parametrize("bad", ["two words", "a\nb", "ks=cdrom:/X.CFG", ""])
def test_boot_options_are_single_words(bad):
    with pytest.raises(ValueError):
        bootcfg.patch_bootcfg(ESXI8, [bad])


def test_isolinux_install_label():
    cfg = ("default esx\nprompt 1\nlabel esx\n  kernel vmlinuz\n  append initrd=initrd.img mem=512M quiet\n"
           "label text\n  kernel vmlinuz\n  append initrd=initrd.img text\n")
    out = bootcfg.patch_isolinux(cfg, ["noapic"])
    assert "  append initrd=initrd.img mem=512M quiet ks=cdrom:/KS.CFG noapic\n" in out
    assert "  append initrd=initrd.img text\n" in out  # only the default label
    assert bootcfg.patch_isolinux(out, ["noapic"]) == out
    with pytest.raises(ValueError, match="not an ESX classic installer"):
        bootcfg.patch_isolinux("default x\nlabel x\n  localboot 0\n", [])
