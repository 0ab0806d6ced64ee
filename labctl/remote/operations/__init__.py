"""Operations: read facts, return typed changes (or why none are needed), apply them safely.

- `macs`: duplicate vswif/vmk MACs and /system/uuid after linked clones — scan, plan, commit-confirmed fix.
"""
