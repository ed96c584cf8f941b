"""The safe reader (phoenix_tasks/core/safe_read.py), directly: files, JSON, YAML.

The hostile corpus (tests/corpus_hostile, run by test_config_corpus.py) checks what
`inv validate` prints for hostile files; these tests pin the reader's limits and
boundaries (1 MiB exactly, 64 levels exactly, 20 digits exactly), the cases a corpus
cannot build (a file swapped for a FIFO between stat and open, a file that grows
while read), and that ordinary files read exactly as before.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from phoenix_tasks.config import documents
from phoenix_tasks.core import safe_read
from phoenix_tasks.config.documents import HYPERVISOR_SCHEMA, check_schema, read_compose, read_json
from phoenix_tasks.config.problems import Problem
from phoenix_tasks.core.safe_read import MAX_BYTES, MAX_DEPTH, Unreadable, parse_json, parse_yaml, read_text
from phoenix_tasks.lab import images

REPO = Path(__file__).resolve().parents[2]


def _flaws(parsed) -> list[tuple[str, str]]:
    return [(f.pointer, f.message) for f in parsed.flaws]


def _within(seconds: float, fn, *args):
    """fn(*args) in a thread; fails (instead of hanging the suite) if it blocks."""
    result: dict = {}

    def run():
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} blocked for more than {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


# -- files ------------------------------------------------------------------------

def test_a_regular_file_and_a_symlink_to_one_are_read(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('{"a": "é"}\n', encoding="utf-8")
    (tmp_path / "link.json").symlink_to(f)
    assert read_text(f) == read_text(tmp_path / "link.json") == '{"a": "é"}\n'


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(Unreadable, match=r"not a regular file: it is a FIFO \(named pipe\)"):
        _within(5, read_text, fifo)


def test_a_fifo_swapped_in_after_the_stat_is_refused_by_fstat(tmp_path, monkeypatch):
    """The stat said "regular file"; the open (O_NONBLOCK) and fstat still catch the FIFO."""
    regular = tmp_path / "regular"
    regular.write_text("{}")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(safe_read.os, "stat", lambda p, *a, **k: real_stat(regular if Path(p) == fifo else p, *a, **k))
    with pytest.raises(Unreadable, match="it is a FIFO"):
        _within(5, read_text, fifo)


@pytest.mark.parametrize("target, kind", [("/dev/zero", "a character device"), ("/dev/null", "a character device")])
def test_a_symlink_to_a_device_is_refused_before_it_is_opened(tmp_path, monkeypatch, target, kind):
    link = tmp_path / "c.json"
    link.symlink_to(target)
    opened = []
    monkeypatch.setattr(safe_read.os, "open", lambda *a, **k: opened.append(a) or pytest.fail("opened a device"))
    with pytest.raises(Unreadable) as info:
        read_text(link)
    assert str(info.value) == f"not a regular file: it is {kind} (a symlink to {target!r})"
    assert opened == []


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(Unreadable, match="^not a regular file: it is a directory$"):
        read_text(tmp_path)


def test_missing_and_dangling(tmp_path):
    with pytest.raises(Unreadable, match="^file not found$"):
        read_text(tmp_path / "nothing.json")
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nothing.json")
    with pytest.raises(Unreadable, match="^file not found$"):
        read_text(tmp_path / "dangling.json")


def test_the_size_limit_is_exactly_one_mib(tmp_path):
    f = tmp_path / "big"
    f.write_bytes(b"x" * MAX_BYTES)
    assert len(read_text(f)) == MAX_BYTES == 1 << 20
    f.write_bytes(b"x" * (MAX_BYTES + 1))
    with pytest.raises(Unreadable, match=r"^file is 1048577 bytes; the limit for a config or stack file is 1 MiB \(1048576 bytes\)$"):
        read_text(f)


def test_a_file_larger_than_its_stat_says_is_read_only_up_to_the_limit(tmp_path, monkeypatch):
    """A file that grows while it is read (st_size is a hint, not a bound)."""
    f = tmp_path / "growing"
    f.write_bytes(b"x" * (3 * MAX_BYTES))
    real_fstat = os.fstat

    def small_fstat(fd):
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 10,
                               st.st_atime, st.st_mtime, st.st_ctime))

    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(safe_read.os, "fstat", small_fstat)
    monkeypatch.setattr(safe_read.os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    with pytest.raises(Unreadable, match="file is larger than that; the limit .* is 1 MiB"):
        read_text(f)
    assert sum(reads) <= MAX_BYTES + 1


def test_invalid_utf8_names_the_byte_offset_and_line(tmp_path):
    f = tmp_path / "a.json"
    f.write_bytes(b'{\n  "a": "caf\xe9"\n}\n')
    with pytest.raises(Unreadable, match=r"^not valid UTF-8: byte 0xe9 at byte offset 13 \(line 2\)$"):
        read_text(f)


def test_a_byte_order_mark_is_refused(tmp_path):
    f = tmp_path / "a.json"
    f.write_bytes(b"\xef\xbb\xbf{}")
    with pytest.raises(Unreadable, match="byte order mark"):
        read_text(f)


# -- JSON -------------------------------------------------------------------------

def test_ordinary_json_reads_as_before():
    text = (REPO / "etc" / "phoenix_vm_configs.json").read_text()
    parsed = parse_json(text)
    assert (parsed.usable, parsed.flaws) == (True, [])
    assert parsed.doc == json.loads(text)
    assert type(parsed.doc["vms"][1]["vmid"]) is int


@pytest.mark.parametrize("text, pointer, message", [
    ("null", "", "the document must be a JSON object ({...}), not null"),
    ("[]", "", "the document must be a JSON object ({...}), not a list"),
    ("1.5", "", "the document must be a JSON object ({...}), not a number"),
    ("NaN", "", "the document must be a JSON object ({...}), not a number"),
    ("true", "", "the document must be a JSON object ({...}), not a boolean"),
    ('{"a": NaN}', "/a", "NaN is not a number JSON allows (no NaN, Infinity or -Infinity)"),
    ('{"a": [Infinity]}', "/a/0", "Infinity is not a number JSON allows (no NaN, Infinity or -Infinity)"),
    ('{"a": {"b": -Infinity}}', "/a/b", "-Infinity is not a number JSON allows (no NaN, Infinity or -Infinity)"),
    ('{"a": 1e400}', "/a", "1e400 is out of range for a number"),
    ('{"a": -1e400}', "/a", "-1e400 is out of range for a number"),
    ('{"a": 123456789012345678901}', "/a", "a number written with 21 digits (123456789012...): at most 20 digits are allowed"),
    ('{"a": 1.23456789012345678901}', "/a", "a number written with 21 digits"),
    ('{"a": "x\\u0000"}', "/a", "control character '\\x00' in the value 'x\\x00': control characters are not allowed in config files"),
    ('{"a": "x\\n"}', "/a", "control character '\\n' in the value 'x\\n'"),
    ('{"a": "x\\t"}', "/a", "control character '\\t'"),
    ('{"a": "\\u007f"}', "/a", "control character '\\x7f'"),
    ('{"a": "\\u0085"}', "/a", "control character '\\x85'"),
    ('{"a": "\\udc00"}', "/a", "an unpaired surrogate '\\udc00'"),
    ('{"a/b": {"k\\u001b": 1}}', "/a~1b", "control character '\\x1b' in the key 'k\\x1b'"),
    ('{"a": "x\ty"}', "", "control character '\\t' in a string at line 1, column 9"),
    ('{"a": 1,}', "", "invalid JSON at line 1, column 9: Expecting property name enclosed in double quotes"),
])
def test_json_refusals(text, pointer, message):
    parsed = parse_json(text)
    assert not parsed.usable and parsed.doc is None
    [(got_pointer, got_message)] = _flaws(parsed)
    assert got_pointer == pointer
    assert message in got_message


def test_twenty_digits_are_read():
    assert parse_json('{"a": 12345678901234567890, "b": -12345678901234567890}').doc == {
        "a": 12345678901234567890, "b": -12345678901234567890}


def test_a_long_control_value_is_cut_short_in_the_message():
    [(_, message)] = _flaws(parse_json(json.dumps({"a": "\x1b" + "x" * 5000})))
    assert len(message) < 200 and "x" * 60 not in message


def test_duplicate_keys_are_reported_and_the_document_stays_usable():
    parsed = parse_json('{"a": {"b": 1, "b": 2}, "c": [{"d": 1, "d": 1}]}')
    assert parsed.usable and parsed.doc == {"a": {"b": 2}, "c": [{"d": 1}]}
    assert _flaws(parsed) == [
        ("/a/b", "key 'b' appears more than once in this object (JSON keeps only the last value)"),
        ("/c/0/d", "key 'd' appears more than once in this object (JSON keeps only the last value)"),
    ]


def _nested_json(levels: int) -> str:
    """An object (level 1) holding lists down to `levels` levels."""
    return '{"a": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


def test_json_depth_64_is_read_65_is_refused():
    assert parse_json(_nested_json(MAX_DEPTH)).usable
    parsed = parse_json(_nested_json(MAX_DEPTH + 1))
    # the object is level 1, the list at /a level 2: level 65 is 63 lists below /a
    assert _flaws(parsed) == [("/a" + "/0" * (MAX_DEPTH - 1), "nested too deeply: more than 64 levels of objects and lists")]


@pytest.mark.parametrize("levels", [1_000, 100_000, 1_000_000])
def test_json_too_deep_for_the_parser_itself(levels):
    parsed = _within(10, parse_json, '{"a": ' + "[" * levels + "]" * levels + "}")
    assert _flaws(parsed) == [("", "nested too deeply: more than 64 levels of objects and lists")]


def test_a_flaw_never_holds_a_raw_control_character():
    """Whatever a library put in a message, the line printed stays one line."""
    flaw = safe_read.Flaw("/a\nb", "x\x1b[2Jy\n")
    assert (flaw.pointer, flaw.message) == ("/a\\nb", "x\\x1b[2Jy\\n")


def test_many_flaws_are_capped():
    parsed = parse_json(json.dumps({f"k{i}": "\x00" for i in range(100)}))
    assert len(parsed.flaws) == 21
    assert parsed.flaws[-1] == safe_read.Flaw("", "... and 80 more problems of this kind in this file (only the first 20 are listed)")


def test_read_json_turns_flaws_into_problems(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('{"vms": [{"name": "portainer\\n"}]}')
    problems: list[Problem] = []
    assert read_json(f, problems) is None
    assert [(p.file, p.pointer) for p in problems] == [(f, "/vms/0/name")]
    os.mkfifo(tmp_path / "fifo")
    problems = []
    assert _within(5, read_json, tmp_path / "fifo", problems) is None
    assert problems == [Problem(tmp_path / "fifo", "", "not a regular file: it is a FIFO (named pipe)")]


# -- the schema's "integer" -------------------------------------------------------

@pytest.mark.parametrize("port, error", [
    (22, None),
    (22.0, "22.0 is not of type 'integer'"),
    (True, "True is not of type 'integer'"),
    (2.2e1, "22.0 is not of type 'integer'"),
])
def test_integer_is_strict_in_the_schemas(port, error):
    doc = json.loads((REPO / "etc" / "phoenix_hypervisor_config.json").read_text())
    doc["vm_access"]["port"] = port
    found = check_schema(doc, HYPERVISOR_SCHEMA, Path("hv.json"))
    assert [(p.pointer, p.message) for p in found] == ([("/vm_access/port", error)] if error else [])


def test_a_float_stays_fine_where_the_schema_wants_a_number():
    doc = json.loads((REPO / "etc" / "phoenix_hypervisor_config.json").read_text())
    doc["vm_access"]["connect_timeout_s"] = 2.5
    assert check_schema(doc, HYPERVISOR_SCHEMA, Path("hv.json")) == []


def test_the_strict_validator_keeps_the_full_match_patterns():
    """Both extensions hold at once: strict integer and `pattern` as a full match."""
    validator = documents._validator(HYPERVISOR_SCHEMA)
    assert not validator.is_type(22.0, "integer") and validator.is_type(22, "integer")
    doc = json.loads((REPO / "etc" / "phoenix_hypervisor_config.json").read_text())
    doc["domain"] += "\n"
    assert [p.pointer for p in check_schema(doc, HYPERVISOR_SCHEMA, Path("hv.json"))] == ["/domain"]


# -- YAML -------------------------------------------------------------------------

@pytest.mark.parametrize("compose", sorted(REPO.glob("stacks/*/docker-compose.yml")), ids=lambda p: p.parent.name)
def test_shipped_compose_files_read_exactly_as_safe_load_reads_them(compose):
    text = compose.read_text()
    parsed = parse_yaml(text)
    assert (parsed.usable, parsed.flaws) == (True, [])
    assert parsed.doc == yaml.safe_load(text)


def test_block_scalars_may_hold_newlines_and_tabs():
    text = "services:\n  a:\n    command: |\n      line one\n      \tline two\n    entrypoint: \"x\\ty\"\n"
    parsed = parse_yaml(text)
    assert parsed.flaws == []
    assert parsed.doc["services"]["a"] == {"command": "line one\n\tline two\n", "entrypoint": "x\ty"}


def test_crlf_line_ends_are_fine():
    assert parse_yaml("a: 1\r\nb: [x, y]\r\n").doc == {"a": 1, "b": ["x", "y"]}


def test_the_alias_bomb_is_refused_at_once():
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join(["*" + chr(97 + i)] * 9) + "]\n" for i in range(8))
    start = time.monotonic()
    parsed = parse_yaml(bomb)
    assert time.monotonic() - start < 1
    assert _flaws(parsed) == [("", "YAML anchors and aliases are not supported in stack files: anchor &a at line 1, column 4")]


@pytest.mark.parametrize("text, pointer, message", [
    ("a: *x\n", "", "YAML anchors and aliases are not supported in stack files: alias *x at line 1, column 4"),
    ("a: &x 1\n", "", "YAML anchors and aliases are not supported in stack files: anchor &x at line 1, column 4"),
    ("a:\n  <<: {b: 1}\n", "/a", "YAML merge keys (<<, line 2) are not supported in stack files"),
    ("a: 1\nb: 2\na: 3\n", "/a", "key 'a' appears more than once in this mapping (lines 1 and 3; YAML keeps only the last value)"),
    ("a:\n  b: 1\n  'b': 2\n", "/a/b", "key 'b' appears more than once in this mapping (lines 2 and 3"),
    ("1: a\n", "", "key '1' at line 1 is read as !!int, not a string; keys in a stack file are strings: quote it"),
    ("a:\n  yes: 1\n", "/a", "key 'yes' at line 2 is read as !!bool"),
    ("? {a: 1}\n: x\n", "", "a key at line 1 is a mapping; keys in a stack file are strings"),
    ('a: "\\e[2J"\n', "/a", "control character '\\x1b' in the value '\\x1b[2J' at line 1: only newline and tab are allowed in stack file values"),
    ('a: ["x\\0"]\n', "/a/0", "control character '\\x00'"),
    ('a: "x\\r"\n', "/a", "control character '\\r'"),
    ('a: "\\x85"\n', "/a", "control character '\\x85'"),
    ('a: "\\ud800"\n', "/a", "an unpaired surrogate '\\ud800'"),
    ('"a\\nb": 1\n', "", "control character '\\n' in the key 'a\\nb' at line 1: control characters are not allowed in keys"),
    ("a: b\x1bc\n", "", "control character '\\x1b' at line 1, column 5: only newline and tab are allowed in stack files"),
    ("a: 1\n\x7f\n", "", "control character '\\x7f' at line 2, column 1"),
    ("a: b\ufffe\n", "", "character '\\ufffe' at line 1, column 5: special characters are not allowed in YAML"),
    ("a: 22:22\n", "/a", "'22:22' at line 1 is the base-60 number 1342 in YAML 1.1, but the text '22:22' for Docker: quote it"),
    ("a: 1:30.5\n", "/a", "is the base-60 number 90.5"),
    ("a: .inf\n", "/a", "'.inf' at line 1 is not a finite number"),
    ("a: -.Inf\n", "/a", "is not a finite number"),
    ("a: .NaN\n", "/a", "is not a finite number"),
    ("a: 1.0e+400\n", "/a", "'1.0e+400' at line 1 is not a finite number"),
    ("a: 123456789012345678901\n", "/a", "a number written with 21 digits"),
    ("a: 2024-02-30\n", "/a", "'2024-02-30' at line 1 cannot be read as !!timestamp: day is out of range for month"),
    ("a: !!timestamp 5\n", "/a", "'5' at line 1 cannot be read as !!timestamp: it is not one"),
    ("a: !!int x\n", "/a", "'x' at line 1 cannot be read as !!int"),
    ("a: !!binary aGk=\n", "/a", "YAML tag '!!binary' at line 1, column 4 is not supported in stack files"),
    ("a: !!set {x}\n", "/a", "YAML tag '!!set'"),
    ("a: !!omap [b: 1]\n", "/a", "YAML tag '!!omap'"),
    ("a: !reset []\n", "/a", "YAML tag '!reset'"),
    ("a: !!python/name:os.system x\n", "/a", "YAML tag '!!python/name:os.system'"),
    ("a:\n\tb: 1\n", "", "invalid YAML at line 2, column 1: found character '\\t' that cannot start any token"),
    ("a: 1\n---\nb: 1\n", "", "invalid YAML at line 2, column 1: but found another document"),
    ("a: [1\n", "", "invalid YAML at line 2, column 1"),
])
def test_yaml_refusals(text, pointer, message):
    parsed = parse_yaml(text)
    assert not parsed.usable and parsed.doc is None
    [(got_pointer, got_message)] = _flaws(parsed)
    assert got_pointer == pointer
    assert message in got_message


def test_explicit_plain_tags_are_fine():
    assert parse_yaml("a: !!str 22:22\nb: !!int '7'\nc: 2024-02-29\n").doc == {
        "a": "22:22", "b": 7, "c": __import__("datetime").date(2024, 2, 29)}


def _nested_yaml(levels: int) -> str:
    """A mapping (level 1) holding flow mappings down to `levels` levels."""
    return "a: " + "{b: " * (levels - 1) + "1" + "}" * (levels - 1) + "\n"


def test_yaml_depth_64_is_read_65_is_refused():
    assert parse_yaml(_nested_yaml(MAX_DEPTH)).usable
    [(pointer, message)] = _flaws(parse_yaml(_nested_yaml(MAX_DEPTH + 1)))
    assert pointer == ""
    assert message.startswith("nested too deeply: more than 64 levels of mappings and lists (line 1, column ")


def test_yaml_block_nesting_counts_too():
    text = "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 1)) + "  " * (MAX_DEPTH + 1) + "x: 1\n"
    assert "nested too deeply" in _flaws(parse_yaml(text))[0][1]


@pytest.mark.parametrize("levels", [1_000, 100_000])
def test_yaml_too_deep_for_the_composer(levels):
    parsed = _within(10, parse_yaml, "a: " + "[" * levels + "]" * levels + "\n")
    assert "nested too deeply" in _flaws(parsed)[0][1]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n", "- a\n", "text\n"])
def test_read_compose_needs_a_mapping(tmp_path, text):
    f = tmp_path / "docker-compose.yml"
    f.write_text(text)
    problems: list[Problem] = []
    assert read_compose(f, problems) is None
    assert problems == [Problem(f, "/services", "a compose file needs a 'services' mapping with at least one service")]


# -- the lab's stand-in images read compose files the same way ---------------------

def _stacks(tmp_path: Path, compose: str | None) -> Path:
    d = tmp_path / "stacks" / "s"
    d.mkdir(parents=True)
    if compose is not None:
        (d / "docker-compose.yml").write_text(compose)
    return tmp_path / "stacks"


def test_stand_ins_read_a_plain_compose_file(tmp_path):
    stacks = _stacks(tmp_path, "services:\n  a:\n    image: x/y:1\n    expose: ['80']\n    deploy: {}\n")
    assert images.stand_ins_for_stacks(stacks) == [images.StandIn("x/y:1", (80,))]


@pytest.mark.parametrize("compose, message", [
    ("a: &a [1]\nb: *a\n", "YAML anchors and aliases are not supported in stack files: anchor &a at line 1, column 4"),
    ("services: {a: {image: x, image: y}}\n", "key 'image' appears more than once"),
    ("- a\n", "a compose file needs a 'services' mapping"),
])
def test_stand_ins_refuse_what_validate_refuses(tmp_path, compose, message):
    stacks = _stacks(tmp_path, compose)
    with pytest.raises(images.ComposeUnreadable, match="docker-compose.yml: /.*: " + message.replace("(", r"\(").replace(")", r"\)")):
        images.stand_ins_for_stacks(stacks)


def test_stand_ins_refuse_a_fifo_without_blocking(tmp_path):
    stacks = _stacks(tmp_path, None)
    os.mkfifo(stacks / "s" / "docker-compose.yml")
    with pytest.raises(images.ComposeUnreadable, match="not a regular file: it is a FIFO"):
        _within(5, images.stand_ins_for_stacks, stacks)
