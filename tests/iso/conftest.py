"""Synthetic installer media, made once per session by labctl.iso.synthetic (nothing from VMware)."""

from __future__ import annotations

import pytest

from labctl.iso import synthetic


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("iso-media")
    return {
        "esxi8": synthetic.write_esxi_iso(d / "esxi8.iso", "8.0u2", "22380479"),
        "esxi7": synthetic.write_esxi_iso(d / "esxi7.iso", "7.0u3"),
        "esxi5": synthetic.write_esxi_iso(d / "esxi5.iso", "5.0"),
        "esx35": synthetic.write_classic_iso(d / "esx35.iso", "3.5"),
        "esx41": synthetic.write_classic_iso(d / "esx41.iso", "4.1"),
        "plain": synthetic.write_plain_iso(d / "plain.iso", "DATA_DISC"),
    }
