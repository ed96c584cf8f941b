"""Reading config and stack files that may be hostile: bounded, non-blocking, strict.

Every config file (JSON) and stack file (docker-compose.yml) is read here, and
nothing in it can crash, hang or exhaust the process.  What is wrong comes back as
flaws, ``(JSON pointer or "", message)``, which `documents` turns into Problems.

Files (`read_text`):
  - only a regular file is read (a symlink to one is fine): the path is stat'ed
    first (opening a device can have side effects), then opened with O_NONBLOCK (a
    FIFO swapped in meanwhile cannot block) and fstat'ed again before reading;
  - at most `MAX_BYTES` (1 MiB) are read, whatever the file claims to be;
  - UTF-8 only, without a byte order mark; a decode error names the byte offset.

JSON (`parse_json`), for the config files and stack manifests:
  - the top level is an object;
  - a key given twice is a flaw (the document stays usable: the schema still runs,
    as before);
  - NaN, Infinity and -Infinity are refused, and numbers out of float range
    (``1e400``); a number literal has at most `MAX_DIGITS` (20) digits;
  - integers are ints and floats are floats: ``22.0`` is not an integer (the schema
    validator in `documents` is strict about "integer");
  - at most `MAX_DEPTH` (64) levels of objects and lists (json.loads' own
    RecursionError on deeper input is caught and reported the same way);
  - no control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) and
    no unpaired surrogate in any key or string value, tab and newline included.

YAML (`parse_yaml`), for docker-compose.yml.  Decision: **anchors, aliases and
merge keys (``<<``) are refused outright** ("YAML anchors and aliases are not
supported in stack files").  Stack files here do not need them, and refusing them
removes the alias bomb ("billion laughs") and every question of shared, mutable
sub-documents at once; bounding the expansion instead would keep both.  Also:
  - a key given twice is a flaw, with both line numbers;
  - every key is a string (``1:``, ``on:``, ``null:`` or a list as a key is a
    flaw: quote it);
  - the same depth cap (64), enforced while composing, before anything deep is
    built;
  - control characters are refused in keys; in values only newline and tab are
    allowed (a ``command:`` block scalar may hold several lines);
  - tags other than the plain YAML types (str, int, float, bool, null, map, seq,
    timestamp) are refused, and a scalar that cannot be constructed (``2020-99-99``)
    is a flaw, not a traceback;
  - numbers: at most 20 digits, finite (no ``.nan``/``.inf``), and no YAML 1.1
    base-60 numbers (``22:22`` would be read as 1342 here while Docker reads the
    text "22:22").
The top level may be anything here; the caller says what it needs
(`documents.read_compose`: a mapping).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode


MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_DIGITS = 20
MAX_FLAWS = 20  # per file; one more line says how many were left out

BOM = b"\xef\xbb\xbf"

# Unicode category Cc, and unpaired surrogates (json.loads and YAML escapes make them).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# In YAML values newline and tab are fine (block scalars, commands).
_CONTROL_IN_YAML_VALUE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Raw in a YAML file: tab, newline and carriage return (CRLF files) are fine.
_CONTROL_IN_YAML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def pointer(*parts: object) -> str:
    """An RFC 6901 JSON pointer from path parts ('' is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Unreadable(Exception):
    """The file cannot be read at all; the message says why."""


@dataclass(frozen=True)
class Flaw:
    """What is wrong, and where (a JSON pointer, "" for the whole file or unknown).

    Both are printed on one line of a terminal: a control character in either (from a
    library's message, say) is written as its escape, never raw.
    """

    pointer: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "pointer", _printable(self.pointer))
        object.__setattr__(self, "message", _printable(self.message))


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


@dataclass
class Parsed:
    """A parsed document and its flaws; `doc` is None when it is not usable."""

    doc: Any = None
    flaws: list[Flaw] = field(default_factory=list)
    usable: bool = True


# -- files ------------------------------------------------------------------------

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(path: Path, mode: int) -> Unreadable:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    via = ""
    if os.path.islink(path):
        via = f" (a symlink to {os.path.realpath(path)!r})"
    return Unreadable(f"not a regular file: it is {kind}{via}")


def _too_big(size: int | None) -> Unreadable:
    what = f"{size} bytes" if size is not None else "larger than that"
    return Unreadable(f"file is {what}; the limit for a config or stack file is 1 MiB ({MAX_BYTES} bytes)")


def read_bytes(path: Path) -> bytes:
    """The content of a regular file of at most MAX_BYTES; raises Unreadable."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise Unreadable("file not found") from None
    except OSError as exc:
        raise Unreadable(f"cannot read file: {exc.strerror}") from None
    if not stat.S_ISREG(before.st_mode):
        raise _not_regular(path, before.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Unreadable("file not found") from None
    except OSError as exc:
        raise Unreadable(f"cannot read file: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between stat and open
            raise _not_regular(path, st.st_mode)
        if st.st_size > MAX_BYTES:
            raise _too_big(st.st_size)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 16, MAX_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_BYTES:  # it grew while we read
                raise _too_big(None)
        return b"".join(chunks)
    except OSError as exc:
        raise Unreadable(f"cannot read file: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file of at most MAX_BYTES; raises Unreadable."""
    data = read_bytes(path)
    if data.startswith(BOM):
        raise Unreadable("the file starts with a UTF-8 byte order mark (BOM): save it as UTF-8 without a BOM")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Unreadable(
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} (line {line})"
        ) from None


# -- shared -----------------------------------------------------------------------

def _short(text: str, limit: int = 60) -> str:
    """repr() of text, cut short: never a raw control character, never a huge line."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def _bad_char_message(ch: str, where: str, text: str, rule: str, line: int | None = None) -> str:
    what = "an unpaired surrogate" if "\ud800" <= ch <= "\udfff" else "control character"
    at = f" at line {line}" if line is not None else ""
    return f"{what} {ch!r} in the {where} {_short(text)}{at}: {rule}"


def _capped(flaws: list[Flaw]) -> list[Flaw]:
    if len(flaws) <= MAX_FLAWS:
        return flaws
    more = len(flaws) - MAX_FLAWS
    return flaws[:MAX_FLAWS] + [Flaw("", f"... and {more} more problems of this kind in this file (only the first {MAX_FLAWS} are listed)")]


def _digits(literal: str) -> int:
    return sum(c.isdigit() for c in literal)


def _too_many_digits(literal: str) -> str:
    return (f"a number written with {_digits(literal)} digits ({literal[:12]}...): "
            f"at most {MAX_DIGITS} digits are allowed")


TOO_DEEP = f"nested too deeply: more than {MAX_DEPTH} levels of objects and lists"
TOO_DEEP_YAML = f"nested too deeply: more than {MAX_DEPTH} levels of mappings and lists"


# -- JSON -------------------------------------------------------------------------

JSON_RULE = "control characters are not allowed in config files"


class _Object(dict):
    """A JSON object that remembers the keys it held more than once."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    duplicates: list[str] = []
    for key, value in pairs:
        if key in obj and key not in duplicates:
            duplicates.append(key)
        obj[key] = value
    if duplicates:
        obj.duplicates = tuple(duplicates)
    return obj


class _Refused:
    """Stands in the parsed document for a number that is refused; found by the walk."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def _parse_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number JSON allows (no NaN, Infinity or -Infinity)")


def _parse_int(literal: str) -> int | _Refused:
    if _digits(literal) > MAX_DIGITS:
        return _Refused(_too_many_digits(literal))
    return int(literal)


def _parse_float(literal: str) -> float | _Refused:
    if _digits(literal) > MAX_DIGITS:
        return _Refused(_too_many_digits(literal))
    value = float(literal)
    if not math.isfinite(value):
        return _Refused(f"{literal} is out of range for a number")
    return value


def _kind(doc: Any) -> str:
    if doc is None:
        return "null"
    if isinstance(doc, bool):
        return "a boolean"
    if isinstance(doc, (int, float, _Refused)):
        return "a number"
    if isinstance(doc, str):
        return "a string"
    if isinstance(doc, list):
        return "a list"
    return type(doc).__name__


def parse_json(text: str) -> Parsed:
    """A config document: a JSON object, checked as the module docstring says."""
    try:
        doc = json.loads(text, object_pairs_hook=_object, parse_constant=_parse_constant,
                         parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Invalid control character") and exc.pos < len(text):
            message = (f"control character {text[exc.pos]!r} in a string at line {exc.lineno}, "
                       f"column {exc.colno}: {JSON_RULE}")
        else:
            message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        return Parsed(None, [Flaw("", message)], False)
    except RecursionError:
        return Parsed(None, [Flaw("", TOO_DEEP)], False)
    if not isinstance(doc, dict):
        return Parsed(None, [Flaw("", f"the document must be a JSON object ({{...}}), not {_kind(doc)}")], False)
    duplicates, fatal = _walk_json(doc)
    flaws = _capped(duplicates + fatal)
    if fatal:
        return Parsed(None, flaws, False)
    return Parsed(doc, flaws, True)


def _walk_json(doc: dict) -> tuple[list[Flaw], list[Flaw]]:
    """(duplicate keys, every other flaw), without recursion."""
    duplicates: list[Flaw] = []
    fatal: list[Flaw] = []
    too_deep = False
    stack: list[tuple[Any, tuple, int]] = [(doc, (), 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
            if not too_deep:
                fatal.append(Flaw(pointer(*path), TOO_DEEP))
                too_deep = True
            continue
        if isinstance(value, dict):
            dup = getattr(value, "duplicates", ())
            children = []
            for key, item in value.items():
                bad = _CONTROL.search(key)
                if bad:  # the key cannot go into a pointer: name it at its object
                    fatal.append(Flaw(pointer(*path), _bad_char_message(bad.group(), "key", key, JSON_RULE)))
                    continue
                if key in dup:
                    duplicates.append(Flaw(pointer(*path, key), f"key {key!r} appears more than once in this object (JSON keeps only the last value)"))
                children.append((item, path + (key,), depth + 1))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend((item, path + (i,), depth + 1) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, str):
            bad = _CONTROL.search(value)
            if bad:
                fatal.append(Flaw(pointer(*path), _bad_char_message(bad.group(), "value", value, JSON_RULE)))
        elif isinstance(value, _Refused):
            fatal.append(Flaw(pointer(*path), value.message))
    return duplicates, fatal


# -- YAML -------------------------------------------------------------------------

ANCHORS_REFUSED = "YAML anchors and aliases are not supported in stack files"
YAML_KEY_RULE = "control characters are not allowed in keys"
YAML_VALUE_RULE = "only newline and tab are allowed in stack file values"

_T = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_T + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}


class _Refusal(Exception):
    """Composing stopped: the message says why and where."""


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _tag(tag: str) -> str:
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag


class _StackLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases and caps the depth while composing."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise _Refusal(f"{ANCHORS_REFUSED}: alias *{event.anchor} at {_at(event.start_mark)}")
        if getattr(event, "anchor", None) is not None:
            raise _Refusal(f"{ANCHORS_REFUSED}: anchor &{event.anchor} at {_at(event.start_mark)}")
        if not isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refusal(f"{TOO_DEEP_YAML} (line {event.start_mark.line + 1}, column {event.start_mark.column + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str) -> Parsed:
    """A stack's compose document (any top level), checked as the module docstring says."""
    bad = _CONTROL_IN_YAML_TEXT.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        return Parsed(None, [Flaw("", f"control character {bad.group()!r} at line {line}, column {column}: "
                                      "only newline and tab are allowed in stack files")], False)
    try:
        loader = _StackLoader(text)  # its reader refuses some characters at once
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return Parsed(None, [Flaw("", f"character {text[exc.position]!r} at line {line}, column {column}: "
                                      f"{exc.reason} in YAML")], False)
    try:
        node = loader.get_single_node()
        if node is None:
            return Parsed(None, [], True)
        flaws = _walk_yaml(node, loader)
        if flaws:
            return Parsed(None, _capped(flaws), False)
        try:
            doc = loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # noqa: BLE001 - a constructor the walk did not foresee
            return Parsed(None, [Flaw("", f"invalid YAML: cannot construct a value ({type(exc).__name__}: {exc})")], False)
        return Parsed(doc, [], True)
    except _Refusal as exc:
        return Parsed(None, [Flaw("", str(exc))], False)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        return Parsed(None, [Flaw("", f"invalid YAML{where}: {what}")], False)
    finally:
        loader.dispose()


def _walk_yaml(root: Any, loader: _StackLoader) -> list[Flaw]:
    """Flaws of the composed node tree (a tree: aliases were refused), without recursion."""
    flaws: list[Flaw] = []
    stack: list[tuple[Any, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node.tag not in _PLAIN_TAGS:
            flaws.append(Flaw(pointer(*path), f"YAML tag {_short(_tag(node.tag))} at {_at(node.start_mark)} is not supported in stack files"))
        elif isinstance(node, ScalarNode):
            flaw = _scalar_flaw(node, loader)
            if flaw:
                flaws.append(Flaw(pointer(*path), flaw))
        elif isinstance(node, SequenceNode):
            stack.extend((item, path + (i,)) for i, item in reversed(list(enumerate(node.value))))
        elif isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            children = []
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                key_flaw = _key_flaw(key_node, line)
                if key_flaw:
                    flaws.append(Flaw(pointer(*path), key_flaw))
                    continue
                key = key_node.value
                if key in seen:
                    flaws.append(Flaw(pointer(*path, key), f"key {key!r} appears more than once in this mapping "
                                                            f"(lines {seen[key]} and {line}; YAML keeps only the last value)"))
                else:
                    seen[key] = line
                children.append((value_node, path + (key,)))
            stack.extend(reversed(children))
    return flaws


def _key_flaw(key_node: Any, line: int) -> str | None:
    if not isinstance(key_node, ScalarNode):
        kind = "a list" if isinstance(key_node, SequenceNode) else "a mapping"
        return f"a key at line {line} is {kind}; keys in a stack file are strings"
    if key_node.tag == _T + "merge":
        return f"YAML merge keys (<<, line {line}) are not supported in stack files (they go with anchors and aliases)"
    bad = _CONTROL.search(key_node.value)
    if bad:
        return _bad_char_message(bad.group(), "key", key_node.value, YAML_KEY_RULE, line)
    if key_node.tag != _T + "str":
        return (f"key {_short(key_node.value)} at line {line} is read as {_tag(key_node.tag)}, not a string; "
                "keys in a stack file are strings: quote it")
    return None


def _scalar_flaw(node: Any, loader: _StackLoader) -> str | None:
    value, line = node.value, node.start_mark.line + 1
    bad = _CONTROL_IN_YAML_VALUE.search(value)
    if bad:
        return _bad_char_message(bad.group(), "value", value, YAML_VALUE_RULE, line)
    if node.tag == _T + "str":
        return None
    if node.tag in (_T + "int", _T + "float") and _digits(value) > MAX_DIGITS:
        return f"{_too_many_digits(value)} (line {line})"
    try:
        constructed = loader.construct_object(node)
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors raise anything on bad input
        if isinstance(exc, yaml.YAMLError):
            reason = getattr(exc, "problem", None) or str(exc)
        elif isinstance(exc, (ValueError, OverflowError)):
            reason = str(exc)
        else:  # AttributeError, KeyError...: PyYAML did not expect this text
            reason = "it is not one"
        return f"{_short(value)} at line {line} cannot be read as {_tag(node.tag)}: {reason}"
    if isinstance(constructed, (int, float)) and not isinstance(constructed, bool) and ":" in value:
        return (f"{_short(value)} at line {line} is the base-60 number {constructed!r} in YAML 1.1, "
                f"but the text {_short(value)} for Docker: quote it")
    if isinstance(constructed, float) and not math.isfinite(constructed):
        return f"{_short(value)} at line {line} is not a finite number"
    return None
