"""VIB packages: the ar container, descriptor.xml, payloads, signatures, offline bundles (pure format code),
plus build, inspect and deploy.

Layout:
  findings.py    Finding(severity, message) and the VibFormatError raised on unsafe/malformed input
  ar.py          strict ar reader (what ESXi accepts, minus what is unsafe) and a VMware-style streaming writer
  descriptor.py  descriptor.xml model: parse (defusedxml), emit in VMware's element order, validate
  payload.py     streaming gunzip with caps, checksums, tgz/vmtar listing with safety checks, tgz writer
  signing.py     CMS/PKCS7 detached signatures over descriptor.xml (cryptography; DER walk for verification)
  esx4.py        ESX 4-era rpm/deb/cross VIBs (esxupdate's descriptor.xml and layouts, RPM reader)
  rpm.py         rpm v4 package writer (complete.rpm, short.rpm)
  bundle.py      offline bundle (depot zip) writer and reader
  build.py       stage dir -> .vib (+ bundle)
  inspect.py     .vib / bundle -> InspectReport (every checksum verified, findings with severity)
  deploy.py      upload + install on lab hosts through labctl.remote

Nothing here imports cryptography at module import time; format code does no I/O beyond the files it is given.
"""
