"""JSON with big strings copied whole instead of escaped and scanned a character at a time.

The json module's C encoder and decoder handle a string one character at a time (about
2 ms for a 1 MB string on each side, a third of a 1 MB enqueue). A big string that needs no
escaping is the same text between two quotes, so:

* ``dumps`` writes such a string as its UTF-8 bytes between quotes; everything else (and
  any string that holds a quote, a backslash or a control character) goes through the C
  encoder, piece by piece. The output is byte for byte the C encoder's.
* ``loads`` of a document without a backslash takes each big string literal out (no
  backslash: the quotes pair up exactly), parses what is left with ``json.loads`` and puts
  the strings back. A document that does not parse raises as ``json.loads`` does.

Only callers that know a value may hold a big string use ``dumps`` (a cheap check first: the
walk costs a small message more than the C encoder saves).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

BIG = 16 * 1024  # characters; below this the C encoder's per-character pass costs little
# The bytes each side must look for, searched for one by one (a memchr pass each, about 1.1 us
# per 100 KB; a translate() into a fresh buffer and one search took 1.8 times as long, a regular
# expression 11 times, str.isprintable() 6 times, the C encoder's own pass 2 ms per MB):
# the encoder escapes control characters, '"' and '\\', and DEL too with ensure_ascii; the
# decoder rejects raw control characters (loads cuts a literal at its closing quote, from a
# document with no backslash, so only those are left to look for).
_CONTROL = tuple(range(0x20))
_ESCAPED = {False: (*_CONTROL, 0x22, 0x5C), True: (*_CONTROL, 0x22, 0x5C, 0x7F)}  # by ensure_ascii
_WHITESPACE = b" \t\n\r"
_DEPTH = 3  # containers walked by dumps: the call's body [args, kwargs, embed] and one more level
# The C scanner json.loads ends in (its memo is cleared per call); typeshed does not list the attribute.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_ENCODERS = {
    ascii_only: json.JSONEncoder(separators=(",", ":"), ensure_ascii=ascii_only).encode for ascii_only in (True, False)
}


def has_big_string(values: Any) -> bool:
    """Whether one of ``values`` (an iterable) is a string of at least BIG characters."""
    for value in values:  # a loop, not any(): this runs for every call sent
        if type(value) is str and len(value) >= BIG:
            return True
    return False


def _clean(raw: bytes, unsafe: tuple[int, ...], start: int = 0, end: int | None = None) -> bool:
    """None of the ``unsafe`` bytes in ``raw[start:end]`` (not copied)."""
    for byte in unsafe:
        if raw.find(byte, start, end) >= 0:
            return False
    return True


def dumps(value: Any, ensure_ascii: bool) -> bytes:
    """``json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii).encode(value)``
    as UTF-8, with big strings copied rather than escaped (same bytes)."""
    out: list[bytes] = []
    _pieces(value, _DEPTH, out, _ENCODERS[ensure_ascii], ensure_ascii)
    return b"".join(out)


def _pieces(value: Any, depth: int, out: list[bytes], encode: Callable[[Any], str], ensure_ascii: bool) -> None:
    kind = type(value)
    if kind is str and len(value) >= BIG and (value.isascii() or not ensure_ascii):
        try:
            raw = value.encode()
        except UnicodeEncodeError:  # a lone surrogate: the encoder's own error below
            raw = b'"'
        if _clean(raw, _ESCAPED[ensure_ascii]):
            out += (b'"', raw, b'"')
            return
    elif depth and (kind is list or kind is tuple) and _worth_walking(value):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _pieces(item, depth - 1, out, encode, ensure_ascii)
        out.append(b"]")
        return
    elif depth and kind is dict and _worth_walking(value.values()) and all(type(key) is str for key in value):
        # (keys other than strings: the encoder's rules)
        out.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            out += (b"," if i else b"", encode(key).encode(), b":")
            _pieces(item, depth - 1, out, encode, ensure_ascii)
        out.append(b"}")
        return
    out.append(encode(value).encode())


def small_loads(raw: bytes | bytearray | str) -> Any:
    """``json.loads(raw)`` straight through its C scanner for the usual document, UTF-8 bytes
    or text of JSON with nothing around it: without the encoding detection, the whitespace
    matches and the decoder's two calls that json.loads runs in Python first (half the cost
    of a message's small header). Anything else (a BOM, UTF-16, whitespace, an error) goes to
    json.loads, which returns or raises as always: UTF-16 or UTF-32 bytes and a BOM never
    scan as JSON from UTF-8."""
    try:
        if type(raw) is bytes:
            text = raw.decode()
        elif type(raw) is str:
            text = raw
        else:
            return json.loads(raw)
        value, end = _SCAN(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError):
        return json.loads(raw)
    return value if end == len(text) else json.loads(raw)


def _worth_walking(items: Iterable[Any]) -> bool:
    """Whether one of ``items`` is a big string or a container that may hold one. Any other
    container is encoded in one call, not piece by piece: the call's empty embed (four
    None) and empty kwargs were eight encoder calls, 8 us of a 60 us ``dumps``."""
    for item in items:  # a loop, not any(): this runs for every container walked
        kind = type(item)
        if (kind is str and len(item) >= BIG) or kind is list or kind is tuple or kind is dict:
            return True
    return False


def loads(raw: bytes | bytearray | str) -> Any:
    """``json.loads(raw)``, with big string literals cut out before the parse and put back."""
    if type(raw) is not bytes or len(raw) < BIG or b"\\" in raw or json.detect_encoding(raw) != "utf-8":
        return small_loads(raw)
    pieces: list[bytes] = []
    strings: list[str] = []
    copied = 0
    opening = raw.find(b'"')
    while opening >= 0:
        closing = raw.find(b'"', opening + 1)
        if closing < 0:
            break  # unterminated: json.loads says where
        if closing - opening > BIG and not _is_key(raw, closing + 1):
            text = _literal(raw, opening + 1, closing)
            if text is not None:
                # "\u0000" + index: no string of the document can be that (it has no backslash,
                # and a raw control character in a string does not parse).
                pieces += (raw[copied:opening], b'"\\u0000%d"' % len(strings))
                strings.append(text)
                copied = closing + 1
        opening = raw.find(b'"', closing + 1)
    if not strings:
        return json.loads(raw)
    pieces.append(raw[copied:])
    return _put_back(json.loads(b"".join(pieces)), strings)


def _is_key(raw: bytes, at: int) -> bool:
    """Whether the first non-whitespace byte from ``at`` is a colon (the string was a key)."""
    while raw[at : at + 1] in _WHITESPACE and at < len(raw):
        at += 1
    return raw[at : at + 1] == b":"


def _literal(raw: bytes, start: int, end: int) -> str | None:
    """The text of the string literal's content ``raw[start:end]``, as json.loads decodes it;
    None when it needs the parser (a control character) or is not UTF-8 (json.loads then
    raises its own error)."""
    if not _clean(raw, _CONTROL, start, end):
        return None
    try:
        return str(memoryview(raw)[start:end], "utf-8", "surrogatepass")  # as json.loads decodes bytes
    except UnicodeDecodeError:
        return None


def _put_back(doc: Any, strings: list[str]) -> Any:
    """``doc`` with each "\\x00<index>" string replaced by strings[index] (no recursion: a
    deep document must not hit the recursion limit here when json.loads did not)."""

    def swapped(value: Any) -> Any:
        return strings[int(value[1:])] if type(value) is str and value[:1] == "\x00" else value

    if type(doc) is str:
        return swapped(doc)
    stack = [doc]
    while stack:
        container = stack.pop()
        items = enumerate(container) if type(container) is list else container.items()
        for key, value in items:
            if type(value) is str:
                if value[:1] == "\x00":
                    container[key] = swapped(value)
            elif type(value) is list or type(value) is dict:
                stack.append(value)
    return doc
