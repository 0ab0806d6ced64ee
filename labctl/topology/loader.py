"""YAML loading with line:col marks.

The topology is parsed with yaml's composer so every value keeps where it came from. The result is plain Python
data plus a `Marks` table mapping a path (tuple of keys/indexes) to (line, col), 1-based, for the value and for the
key. Duplicate mapping keys — silently "last wins" in PyYAML — are reported as problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Path_ = tuple[str | int, ...]


def format_path(path: Path_) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out or "(top level)"


@dataclass
class Marks:
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """The closest known position for path (falls back to its parents)."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))


@dataclass
class Problem:
    path: Path_
    message: str
    severity: str = "error"  # "error" | "warning"
    key: bool = False  # mark the key rather than the value (unknown keys)
    pos: tuple[int, int] | None = None  # explicit position (e.g. the second of two duplicate keys)

    def format(self, filename: str, marks: Marks) -> str:
        line, col = self.pos or marks.at(self.path, key=self.key)
        sev = "warning: " if self.severity == "warning" else ""
        from labctl.topology.limits import escape

        return escape(f"{filename}:{line}:{col}: {format_path(self.path)}: {sev}{self.message}")


class YamlSyntaxError(Exception):
    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


def load_yaml_with_marks(text: str) -> tuple[Any, Marks, list[Problem]]:
    """Parse YAML text; returns (data, marks, problems). Raises YamlSyntaxError on invalid YAML."""
    import yaml

    from labctl.topology import limits

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same marks, 10-30x faster
    try:
        limits.prescan(text, loader)
    except limits.LimitError as e:
        raise YamlSyntaxError(e.line, e.col, e.message) from None
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as e:
        from labctl.topology.yaml_errors import explain

        x = explain(text, e)
        raise YamlSyntaxError(x.line, x.col, x.message) from None
    except yaml.YAMLError as e:
        raise YamlSyntaxError(1, 1, f"invalid YAML: {e}") from None
    marks = Marks()
    problems: list[Problem] = []
    if node is None:
        return None, marks, problems
    constructor = yaml.SafeLoader("")

    def conv(n: Any, path: Path_) -> Any:
        marks.values[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[str, Any] = {}
            try:
                constructor.flatten_mapping(n)  # merge keys (`<<: *base`)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None) or n.start_mark
                problems.append(Problem(path, f"cannot merge: {getattr(e, 'problem', e)}",
                                        pos=(mark.line + 1, mark.column + 1)))
                n.value = [(k, v) for k, v in n.value if k.tag != "tag:yaml.org,2002:merge"]
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    key = scalar(k, path)
                else:  # a complex key (`? [a, b]`): never valid in a topology, shown as text
                    key = f"{k.tag.rsplit(':', 1)[-1]} at {k.start_mark.line + 1}:{k.start_mark.column + 1}"
                if not isinstance(key, str):
                    key = str(key)
                kp = path + (key,)
                if key in out:
                    problems.append(Problem(kp, f"duplicate key '{key}' (the later value would silently win)",
                                            pos=(k.start_mark.line + 1, k.start_mark.column + 1)))
                    continue
                marks.keys[kp] = (k.start_mark.line + 1, k.start_mark.column + 1)
                out[key] = conv(v, kp)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [conv(item, path + (i,)) for i, item in enumerate(n.value)]
        return scalar(n, path)

    def scalar(n: Any, path: Path_) -> Any:
        try:
            value = constructor.construct_object(n, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:  # e.g. `!!int x`, a 30 February
            problems.append(Problem(path, f"cannot read this value as {n.tag.rsplit(':', 1)[-1]}: {e}",
                                    pos=(n.start_mark.line + 1, n.start_mark.column + 1)))
            return None
        if isinstance(value, str) and (why := limits.unsafe_char(value)):
            problems.append(Problem(path, f"{why}; only printable text is allowed",
                                    pos=(n.start_mark.line + 1, n.start_mark.column + 1)))
        return value

    return conv(node, ()), marks, problems
