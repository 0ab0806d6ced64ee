"""The .vmx library: byte-exact round trips (real files), escapes, edits that keep the layout, duplicates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labctl.render import vmx
from labctl.render.vmx import VmxError, escape, parse, unescape

DATA = Path(__file__).parent / "data" / "vmx"


def _fixture_files(fixtures_dir: Path) -> list[Path]:
    files = sorted((fixtures_dir / "vmx").glob("*.vmx"))
    assert files, "no .vmx fixtures found"
    return files


# ---- round trips -------------------------------------------------------------------------------------


def test_every_shared_fixture_round_trips_byte_identical(fixtures_dir):
    for path in _fixture_files(fixtures_dir):
        data = path.read_bytes()
        assert parse(data).dump_bytes() == data, path.name
        text = data.decode("utf-8")
        assert parse(text).dump() == text, path.name
        assert vmx.read(path).dump_bytes() == data, path.name


def test_local_data_files_round_trip_byte_identical():
    files = sorted(DATA.glob("*.vmx"))
    assert len(files) >= 4
    for path in files:
        data = path.read_bytes()
        assert parse(data).dump_bytes() == data, path.name


def test_annotation_fixture_escapes_decode(fixtures_dir):
    v = vmx.read(fixtures_dir / "vmx" / "annotation.vmx")
    assert v["annotation"] == 'Some |text| to test the "escaping": ||""||"| Escaped!'
    assert v["displayName"] == "test"
    assert v.warnings() == []


def test_gsx_fixture_shebang_blank_lines_and_lan_segments(fixtures_dir):
    v = vmx.read(fixtures_dir / "vmx" / "gsx-in-the-wild-3.vmx")
    assert v.dump().startswith("#!/usr/bin/vmware\n")
    assert v["ethernet1.pvnID"] == "52 e3 67 11 22 b9 90 a3-df 09 e3 9c c3 64 b1 22"
    assert v["ETHERNET0.VNET"] == "/dev/vmnet1"
    assert v["uuid.action"] == "create"
    assert "#!/usr/bin/vmware" not in v.keys()


def test_fusion_fixture_keys_keep_their_case(fixtures_dir):
    v = vmx.read(fixtures_dir / "vmx" / "fusion-in-the-wild-1.vmx")
    assert "MemAllowAutoScaleDown" in v.keys()
    assert v["memallowautoscaledown"] == "FALSE"
    assert v["ethernet1.generatedAddressOffset"] == "10"
    assert v.encoding == "UTF-8"


def test_crlf_bom_comments_and_malformed_lines_round_trip():
    data = (
        b'\xef\xbb\xbf.encoding = "UTF-8"\r\n'
        b"# full-line comment\r\n"
        b"\r\n"
        b'  memsize\t=  "2048"   # trailing comment\n'  # one LF line in a CRLF file
        b"numvcpus = 2 # unquoted\r\n"
        b"this is not a vmx line\r\n"
        b'broken = "unterminated\r\n'
        b"empty =\r\n"
        b'last = "no newline"'
    )
    v = parse(data)
    assert v.dump_bytes() == data
    assert v.bom
    assert v["memsize"] == "2048"
    assert v["numvcpus"] == "2"
    assert v["empty"] == ""
    assert v["last"] == "no newline"
    assert "broken" not in v
    assert [n for n, _ in v.malformed()] == [6, 7]
    assert any("not a `name" in w for w in v.warnings())
    # str API: the BOM is U+FEFF, line endings untouched
    text = data.decode("utf-8")
    assert parse(text).dump() == text


def test_value_with_hash_inside_quotes_is_not_a_comment():
    v = parse('annotation = "a # b" # real comment\n')
    assert v["annotation"] == "a # b"


def test_unquoted_value_ends_at_hash():
    v = parse("a = b#c\n")
    assert v["a"] == "b"
    assert v.dump() == "a = b#c\n"


# ---- escapes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"|7C|22", b'|"'),
        (b"|7c|0a", b"|\n"),  # lower case decodes too
        (b"a|b", b"a|b"),  # | not followed by two hex digits stays literal
        (b"a|4", b"a|4"),
        (b"|zz|", b"|zz|"),
        (b"|45|73", b"Es"),
        (b"||7C", b"||"),
    ],
)
def test_unescape(raw, decoded):
    assert unescape(raw) == decoded


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b'say "hi"', b"say |22hi|22"),
        (b"a|b", b"a|7Cb"),
        (b"line1\nline2\r", b"line1|0Aline2|0D"),
        (b"tab\there", b"tab\there"),  # tab stays raw
        (b"\x00\x08\x1f\x7f", b"|00|08|1F|7F"),  # upper-case hex
        ("café".encode(), "café".encode()),  # bytes >= 0x80 raw
        (b"#not a comment", b"#not a comment"),
    ],
)
def test_escape(raw, escaped):
    assert escape(raw) == escaped
    assert unescape(escape(raw)) == raw


def test_set_writes_escaped_value_and_reads_it_back():
    v = parse('.encoding = "UTF-8"\nannotation = "x"\n')
    v.set("annotation", 'Lab "esx1"\nowner: ops|lab\tcafé')
    assert v.dump() == '.encoding = "UTF-8"\nannotation = "Lab |22esx1|22|0Aowner: ops|7Clab\tcafé"\n'
    assert parse(v.dump())["annotation"] == 'Lab "esx1"\nowner: ops|lab\tcafé'


# ---- encodings ----------------------------------------------------------------------------------------


def test_windows_1252_file_decodes_values_and_round_trips():
    data = '.encoding = "windows-1252"\ndisplayName = "Café ß"\nannotation = "|E9t|E9"\n'.encode("cp1252")
    v = parse(data)
    assert v.codec == "cp1252"
    assert v["displayName"] == "Café ß"
    assert v["annotation"] == "été"  # escaped high bytes are bytes of the file's charset
    assert v.dump_bytes() == data
    v.set("displayName", "Zoë")
    assert v.dump_bytes().splitlines()[1] == 'displayName = "Zoë"'.encode("cp1252")


def test_gbk_file_escapes_a_trail_byte_that_looks_like_a_pipe():
    # U+7C85 in GBK is 0xBB 0x7C: the writer works on bytes, so the trail byte is escaped as |7C like VMware does
    char = "\u7c85"
    assert char.encode("gbk") == b"\xbb\x7c"
    v = parse(b'.encoding = "GBK"\ndisplayName = "x"\n')
    v.set("displayName", char + "复")
    line = v.dump_bytes().splitlines()[1]
    assert line == b'displayName = "\xbb|7C' + "复".encode("gbk") + b'"'
    assert parse(v.dump_bytes())["displayName"] == char + "复"


def test_character_outside_the_encoding_is_a_clean_error():
    v = parse(b'.encoding = "windows-1252"\na = "b"\n')
    with pytest.raises(VmxError, match="cannot be written in this file's encoding"):
        v.set("a", "漢字")


def test_unknown_encoding_falls_back_to_utf8_with_a_warning():
    data = '.encoding = "x-klingon"\na = "é"\n'.encode()
    v = parse(data)
    assert v["a"] == "é"
    assert any("x-klingon" in w for w in v.warnings())
    assert v.dump_bytes() == data


def test_changing_encoding_re_encodes_values():
    v = parse('.encoding = "UTF-8"\ndisplayName = "Café"\n'.encode())
    v.set(".encoding", "windows-1252")
    assert v.dump_bytes() == '.encoding = "windows-1252"\ndisplayName = "Café"\n'.encode("cp1252")
    assert parse(v.dump_bytes())["displayName"] == "Café"


def test_invalid_utf8_bytes_survive_a_round_trip_and_an_edit_elsewhere():
    data = b'a = "\xff\xfe"\nb = "1"\n'
    v = parse(data)
    v.set("b", "2")
    assert v.dump_bytes() == b'a = "\xff\xfe"\nb = "2"\n'


# ---- edits -------------------------------------------------------------------------------------------


def test_set_existing_key_keeps_position_case_spacing_and_comment():
    text = 'config.version = "8"\r\n  memSize\t=  "1024"   # was 1 GB\r\nnumvcpus = "1"\r\n'
    v = parse(text)
    v.set("MEMSIZE", "2048")
    assert v.dump() == 'config.version = "8"\r\n  memSize\t=  "2048"   # was 1 GB\r\nnumvcpus = "1"\r\n'
    assert v["memsize"] == "2048"


def test_set_same_value_keeps_the_line_byte_for_byte():
    text = 'numvcpus = 2 # unquoted\nannotation = "a|7cb"\n'
    v = parse(text)
    v.set("numvcpus", "2")
    v.set("annotation", "a|b")
    assert v.dump() == text


def test_set_unquoted_value_is_written_quoted():
    v = parse("numvcpus = 1 # one\n")
    v["numvcpus"] = "2"
    assert v.dump() == 'numvcpus = "2" # one\n'


def test_new_key_goes_after_its_group():
    v = parse(
        'ethernet0.present = "TRUE"\nethernet0.virtualDev = "e1000"\nethernet1.present = "TRUE"\nmemsize = "4"\n'
    )
    v.set("ethernet0.address", "00:50:56:01:00:01")
    v.set("ethernet2.present", "TRUE")  # no ethernet2 group yet: after the ethernet family
    v.set("uuid.action", "create")  # nothing related: at the end
    assert v.dump() == (
        'ethernet0.present = "TRUE"\n'
        'ethernet0.virtualDev = "e1000"\n'
        'ethernet0.address = "00:50:56:01:00:01"\n'
        'ethernet1.present = "TRUE"\n'
        'ethernet2.present = "TRUE"\n'
        'memsize = "4"\n'
        'uuid.action = "create"\n'
    )


def test_new_key_in_crlf_file_uses_crlf_and_missing_final_newline_stays_missing():
    v = parse('a = "1"\r\nb = "2"')
    v.set("c", "3")
    assert v.dump() == 'a = "1"\r\nb = "2"\r\nc = "3"'


def test_appending_after_a_last_line_ending_in_cr_keeps_its_value():
    v = parse('a = "x"\nb =\r')  # found by hypothesis: the \r is b's value, not half of a CRLF
    assert v["b"] == "\r"
    v.set("c", "1")
    assert parse(v.dump())["b"] == "\r"


def test_new_encoding_key_goes_first_after_shebang():
    v = parse('#!/usr/bin/vmware\nmemsize = "32"\n')
    v.set(".encoding", "UTF-8")
    assert v.dump() == '#!/usr/bin/vmware\n.encoding = "UTF-8"\nmemsize = "32"\n'


def test_delete_removes_every_occurrence_and_keeps_other_lines():
    v = parse('# c\na = "1"\nb = "2"\nA = "3"\n')
    assert v.delete("a")
    assert not v.delete("a")
    assert v.dump() == '# c\nb = "2"\n'
    with pytest.raises(KeyError):
        del v["missing"]


def test_delete_last_line_keeps_missing_final_newline():
    v = parse('a = "1"\nb = "2"')
    v.delete("b")
    assert v.dump() == 'a = "1"'


def test_invalid_key_and_value_types_are_rejected():
    v = parse("")
    with pytest.raises(VmxError):
        v.set("bad key", "x")
    with pytest.raises(TypeError):
        v.set("memsize", 2048)  # type: ignore[arg-type]


def test_empty_file():
    v = parse(b"")
    assert v.dump_bytes() == b""
    assert len(v) == 0
    v.set("a", "b")
    assert v.dump() == 'a = "b"\n'


# ---- dict API and duplicates -------------------------------------------------------------------------


def test_case_insensitive_lookup_and_dict_api():
    v = parse('memsize = "1"\nMemSize = "2"\ndisplayName = "x"\n')
    assert v["MEMSIZE"] == "2"  # last wins
    assert v.get("nope") is None and v.get("nope", "d") == "d"
    assert "DISPLAYNAME" in v and 42 not in v
    assert v.keys() == ["MemSize", "displayName"]
    assert v.items() == [("MemSize", "2"), ("displayName", "x")]
    assert list(v) == v.keys() and len(v) == 2
    assert v.line_of("memsize") == 2
    with pytest.raises(KeyError):
        v["nope"]


def test_duplicates_are_reported_and_set_changes_the_winning_line():
    v = parse('memsize = "1"\nx = "y"\nMemSize = "2"\nmemsize = "3"\n')
    (dup,) = v.duplicates()
    assert dup.key == "memsize" and dup.lines == (1, 3, 4)
    assert str(dup) == "line 4: duplicate key 'memsize' (also on line 1, 3); the last value wins"
    v.set("MEMSIZE", "4")
    assert v.dump() == 'memsize = "1"\nx = "y"\nMemSize = "2"\nmemsize = "4"\n'
    assert v["memsize"] == "4"


def test_write_goes_through_atomic_writer(tmp_path):
    from labctl.render.files import WriteStatus

    v = parse('displayName = "esx1"\n')
    target = tmp_path / "esx1" / "esx1.vmx"
    assert vmx.write(target, v) is WriteStatus.CREATED
    assert vmx.write(target, v) is WriteStatus.UNCHANGED
    assert vmx.read(target).dump_bytes() == v.dump_bytes()


# ---- the local data files --------------------------------------------------------------------------------


def test_data_mixed_eol_file():
    v = vmx.read(DATA / "mixed-eol-malformed.vmx")
    assert v["memsize"] == "512" and v["config.version"] == "8" and v["empty"] == ""
    assert v["annotation"] == "Line1\nLine2 | lower |upper |zz literal|"
    assert [n for n, _ in v.malformed()] == [7, 8]
    v.set("memsize", "1024")
    out = v.dump_bytes()
    assert b'\tmemsize\t=\t"1024"\t# tabs\r\n' in out
    assert out.replace(b'"1024"', b'"512"') == (DATA / "mixed-eol-malformed.vmx").read_bytes()


def test_data_windows_1252_and_gbk_files():
    v = vmx.read(DATA / "windows-1252.vmx")
    assert v["displayName"] == "Serveur de dév"
    assert v["annotation"] == 'Propriété: équipe "lab"'
    g = vmx.read(DATA / "gbk.vmx")
    assert g.codec == "gbk" and g["displayName"] == "测试机"
    assert g["annotation"] == "恢复\n第二行"


def test_data_duplicate_keys_file():
    v = vmx.read(DATA / "duplicate-keys.vmx")
    assert v["memsize"] == "4096"
    assert [d.lines for d in v.duplicates()] == [(2, 3, 5)]
    assert v.warnings() == ["line 5: duplicate key 'memSize' (also on line 2, 3); the last value wins"]


def test_data_crlf_bom_file_edit_keeps_crlf_everywhere():
    v = vmx.read(DATA / "windows-crlf-bom.vmx")
    assert v.bom and v["guestOS"] == "vmkernel8"
    v.set("ethernet1.address", "00:50:56:01:00:02")
    v.set("memsize", "8192")
    out = v.dump_bytes()
    assert out.startswith(b"\xef\xbb\xbf.encoding")
    assert out.count(b"\n") == out.count(b"\r\n")
    lines = out.split(b"\r\n")
    i = lines.index(b'ethernet1.address = "00:50:56:01:00:02"')
    assert lines[i - 1].startswith(b"ethernet1.addressType")
    assert b'memsize = "8192"                      # MB; multiple of 4' in lines


# ---- properties (hypothesis, when installed) -----------------------------------------------------------

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # optional: the deterministic tests above cover the same ground
    given = None

if given is not None:
    _VMX_CHARS = st.sampled_from(list(' \t="#|\r\nabAB.:09Fcé\ufeff\x00\x7f'))
    _VMX_TEXT = st.lists(_VMX_CHARS, max_size=80).map("".join)

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.binary(max_size=200))
    def test_prop_any_bytes_round_trip(data):
        assert parse(data).dump_bytes() == data

    @settings(max_examples=300, deadline=None, database=None)
    @given(_VMX_TEXT)
    def test_prop_vmx_like_text_round_trips(text):
        assert parse(text).dump() == text
        assert parse(text.encode("utf-8")).dump_bytes() == text.encode("utf-8")

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.binary(max_size=60))
    def test_prop_escape_unescape(raw):
        out = escape(raw)
        assert unescape(out) == raw
        assert b'"' not in out and b"\n" not in out and b"\r" not in out
        assert re.fullmatch(rb"(?:[^|]|\|[0-9A-F]{2})*", out, re.DOTALL)

    @settings(max_examples=200, deadline=None, database=None)
    @given(_VMX_TEXT, st.text(max_size=40), st.sampled_from(["memsize", "ethernet0.address", "Fresh.Key"]))
    def test_prop_set_then_get_and_reparse(text, value, key):
        v = parse(text)
        before = {k.lower(): val for k, val in v.items() if k.lower() != key.lower()}
        v.set(key, value)
        assert v[key] == value
        again = parse(v.dump())
        assert again[key] == value
        after = {k.lower(): val for k, val in again.items() if k.lower() != key.lower()}
        assert after == before

    @settings(max_examples=200, deadline=None, database=None)
    @given(_VMX_TEXT, st.text(max_size=20))
    def test_prop_set_existing_key_changes_only_its_line(text, value):
        v = parse(text)
        keys = v.keys()
        if not keys:
            return
        key = keys[0]
        before = v.dump_bytes().split(b"\n")
        v.set(key, value)
        after = v.dump_bytes().split(b"\n")
        assert len(before) == len(after)
        assert sum(1 for a, b in zip(before, after) if a != b) <= 1
