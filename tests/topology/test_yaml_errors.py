"""YAML syntax errors in plain words (issue 12 item 10), from the pure-Python and the libyaml (C) parser alike.

The loader may use either parser; `explain` decides on the source text, so both must give the same advice.
cases.yaml checks the whole path (file:line:col through `load`); this checks each parser's raw exception.
"""

from __future__ import annotations

import pytest
import yaml

from labctl.topology.yaml_errors import explain

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if getattr(yaml, "__with_libyaml__", False) else [])

CASES = [
    ("lab: a\nesx_hosts:\n  - name: e\n    flavor: esxi\n   version: '8.0'\n", (5, 4),
     "wrong indentation: line 5 starts at column 4, the line above it (line 4) at column 5"),
    ("lab: a\nnetworks:\n  - name: n\n    type: host-only\n  subnet: 10.0.0.0/24\n", (5, 3),
     "wrong indentation: line 5 starts at column 3"),
    ("lab: a\nesx_hosts:\n  - name: e\n     flavor: esx\n", (4, 6), "line 4 is indented more than the line above"),
    ("lab: a\nesx_hosts:\n\t- name: e\n", (3, 1), "tab character"),
    ("lab: a\nesx_hosts:\n  - name: e\n  \tflavor: esx\n", (4, 3), "tab character"),
    ("lab: a\nvcenter:\n  host: vc: 1\n", (3, 11), "quote the value: host: \"vc: 1\""),
    ("lab: a\nesx_hosts:\n  - iso: C:\\isos\\esx: 3.5.iso\n", None, "quote the value: iso: \"C:\\\\isos\\\\esx: 3.5.iso\""),
    ("lab: 'a\nesx_hosts: []\n", (1, 6), "the quote opened at line 1, column 6 is never closed"),
    ("lab: a\nnics: [a, b\n", (2, 7), "the '[' opened at line 2, column 7 is not closed"),
    ("lab: {a\n", (1, 6), "the '{' opened at line 1, column 6 is not closed"),
    ("lab: a\nnics:\n  - lan\n  -storage\nflavor: esx\n", (4, 3), "a list item needs a space after '-'"),
    ("lab: @a\n", (1, 6), "'@' is reserved in YAML and cannot begin an unquoted value; quote it: \"@a\""),
    ("lab: `a`\n", (1, 6), "quote it: \"`a`\""),
    ("lab: *a\n", (1, 6), "'*' starts an alias"),
]


@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("text,pos,words", CASES, ids=[c[2][:40] for c in CASES])
def test_explained_by_either_parser(loader, text, pos, words):
    with pytest.raises(yaml.YAMLError) as info:
        yaml.compose(text, Loader=loader)
    x = explain(text, info.value)
    assert words in x.message, x.message
    assert "<block end>" not in x.message and "expected '-' indicator" not in x.message
    if pos is not None:
        assert (x.line, x.col) == pos


def test_validate_prints_the_plain_words_with_file_line_col(run_cli, tmp_path):
    f = tmp_path / "lab.yaml"
    f.write_text("lab: a\nesx_hosts:\n  - name: e\n    flavor: esxi\n   version: '8.0'\n")
    r = run_cli("validate", "lab.yaml")
    assert r.status == 2 and "Traceback" not in r.err
    assert r.err.startswith("lab.yaml:5:4: (top level): invalid YAML: wrong indentation: line 5 starts at column 4")
