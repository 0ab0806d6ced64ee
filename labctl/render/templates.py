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


def _shquote(value: object) -> str:
    """One word for a POSIX shell (kickstart %firstboot/%post lines): shlex.quote."""
    import shlex

    return shlex.quote(str(value))


def environment(user_dir: str | os.PathLike[str] | None = None, *, first: tuple[str | os.PathLike[str], ...] = ()):
    """Templates are looked up in `first` (e.g. the directory of a user's own kickstart template), then `user_dir`,
    then labctl's own."""
    import jinja2

    dirs = [str(d) for d in first] + ([str(user_dir)] if user_dir else []) + [str(builtin_template_dir())]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["vmx"] = vmx_value
    env.filters["shquote"] = _shquote
    return env


def render(env, name: str, context: dict) -> str:
    """Render template `name`; a broken template (syntax, unknown variable) is a usage error naming it, not a
    traceback — user templates (`--templates`, `install.kickstart`) go through here."""
    import jinja2

    from labctl.errors import UsageError

    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as e:
        raise UsageError(f"template {e.filename or name} line {e.lineno}: {e.message}",
                         hint="fix the template, or remove it to use labctl's own") from None
    except jinja2.TemplateNotFound as e:
        raise UsageError(f"template {e.name} not found", hint="check the template directory") from None
    except jinja2.UndefinedError as e:
        raise UsageError(f"template {name}: {e.message}",
                         hint="the variables a kickstart template sees are listed in docs/install.md") from None
