"""The Jinja2 environment over labctl's templates (and a user directory that overrides them)."""

from __future__ import annotations

import os
from pathlib import Path


def builtin_template_dir() -> Path:
    """`templates/` — inside the installed package (wheel) or at the top of a source checkout."""
    import labctl

    pkg = Path(labctl.__file__).resolve().parent
    for cand in (pkg / "templates", pkg.parent / "templates"):
        if (cand / "vmx").is_dir():
            return cand
    from labctl.errors import EnvironmentProblem

    raise EnvironmentProblem(
        "labctl's templates are missing from this installation",
        hint="reinstall labctl: pip install --force-reinstall labctl",
    )


def vmx_value(value: object) -> str:
    """A .vmx value, quoted and escaped the way VMware writes it (`|22` for a quote, `|7C` for a pipe)."""
    from labctl.render.vmx import escape

    return '"' + escape(str(value).encode("utf-8")).decode("utf-8") + '"'


def environment(user_dir: str | os.PathLike[str] | None = None):
    import jinja2

    dirs = ([str(user_dir)] if user_dir else []) + [str(builtin_template_dir())]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["vmx"] = vmx_value
    return env
