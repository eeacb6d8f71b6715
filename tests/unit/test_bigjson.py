"""bigjson: the same bytes as the json module's C encoder, the same values (and errors) as
json.loads, with big strings copied instead of handled a character at a time."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from typing import Any

import pytest

from taskq import bigjson

BIG = "ab" * bigjson.BIG  # past the threshold, nothing to escape
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def reference(value: Any, ensure_ascii: bool) -> bytes:
    return json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii).encode(value).encode()


DOCUMENTS: list[Any] = [
    [[BIG], {}, EMBED],
    [[BIG, 1, 2.5, None, True, [BIG, "x"], {"a": BIG}], {"k": BIG, "n": -3}, EMBED],
    [(BIG,), {"deep": {"deeper": {"deepest": [BIG]}}}, EMBED],  # beyond the walked depth: the encoder's
    [[], {1: BIG, None: BIG}, EMBED],  # keys that are not strings: the encoder's rules
    [[os.urandom(bigjson.BIG).hex()], {}, EMBED],
    {"status": "SUCCESS", "result": BIG, "traceback": None, "children": []},
    BIG,
    [BIG, BIG],
    *([[BIG + c + BIG]] for c in ['"', "\\", "\n", "\x00", "\x1f", "\x7f", "é", "\u2028", "𝄞"]),
]


@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("document", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_dumps_writes_the_c_encoders_bytes_and_loads_reads_them_back(document: Any, ensure_ascii: bool) -> None:
    raw = bigjson.dumps(document, ensure_ascii)
    assert raw == reference(document, ensure_ascii)
    assert bigjson.loads(raw) == json.loads(raw)


def test_a_big_string_is_copied_not_escaped() -> None:
    # A 1 MB string without anything to escape is its own bytes between quotes
    text = os.urandom(512 * 1024).hex()
    assert bigjson.dumps([[text], {}], ensure_ascii=False) == b'[["' + text.encode() + b'"],{}]'
    assert bigjson.loads(b'[["' + text.encode() + b'"],{}]') == [[text], {}]


def test_dumps_raises_what_the_encoder_raises() -> None:
    circular: list[Any] = [BIG]
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular"):
        bigjson.dumps(circular, ensure_ascii=False)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate is not UTF-8
        bigjson.dumps([BIG + "\ud800"], ensure_ascii=False)
    assert bigjson.dumps([BIG + "\ud800"], ensure_ascii=True) == reference([BIG + "\ud800"], True)
    with pytest.raises(TypeError):
        bigjson.dumps([BIG, object()], ensure_ascii=False)


B = BIG.encode()
PARSED = [
    b'["' + B + b'"]',
    b'  {"a" : "' + B + b'" , "b":["' + B + b'",1]}  ',
    b'{"' + B + b'": 1}',  # a big key: left to the parser
    b'{"' + B + b'"\n :"' + B + b'"}',
    b'"' + B + b'"',
    b'["' + B + b'\xed\xa0\x80"]',  # an encoded surrogate: json.loads lets it through
    b'["' + B + b'\xc3\xa9"]',
]
MALFORMED = [
    b'["' + B + b'"',  # unterminated array
    b'["' + B,  # unterminated string
    b'["' + B + b'" "x"]',  # missing comma
    b'["' + B + b'\x01"]',  # a raw control character
    b'["' + B + b'\xff"]',  # not UTF-8
    b"[" + B + b"]",  # no quotes at all
    b'["' + B + b'"] x',  # extra data
    b'["\\u0000' + B + b'"]',  # looks like the placeholder, but has a backslash: the parser's
]


@pytest.mark.parametrize("raw", PARSED, ids=range(len(PARSED)))
def test_loads_reads_what_json_loads_reads(raw: bytes) -> None:
    assert bigjson.loads(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_loads_fails_where_json_loads_fails(raw: bytes) -> None:
    try:
        expected: Any = json.loads(raw)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            bigjson.loads(raw)
    else:
        assert bigjson.loads(raw) == expected


# Small documents, which small_loads sends straight to the C scanner when it can: whatever
# json.loads does with them (its encoding detection, BOMs, whitespace, errors) must not change.
SMALL: list[bytes | str] = [
    b'[[],{},{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]',
    b'[[1796602273.9625812],{},{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]',
    b'{"h":{"task":"t","id":"x","origin":"1@h"}}', b'{"h":{"task":"t","id":"x"},"k":1}',
    b' [1] ', b"[1]\n", b"  [1, 2]\n", "[1]", "\ufeff[1]", "\ufeff[1]".encode(), "[1]".encode("utf-16"),
    '[1, "\u00e9"]'.encode("utf-16"), "[1]".encode("utf-16-le"), '{"a": 1}'.encode("utf-16-le"),
    "[1]".encode("utf-32"), b'["\xed\xa0\x80"]', b'"\xed\xa0\x80"', b'["\xc3\xa9"]', b'"x"', b"1e5",
    b"[Infinity, -0.0]", b"", b"[1,", b"[1] x", b"[1]{", b'["\x01"]', b'["\xff"]', b"\x00[1]", b"nul",
    b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000,
]  # fmt: skip


@pytest.mark.parametrize("raw", SMALL, ids=range(len(SMALL)))
def test_small_loads_returns_and_raises_what_json_loads_does(raw: bytes | str) -> None:
    def outcome(loads: Any) -> tuple[str, Any]:
        try:
            return "value", loads(raw)
        except (ValueError, RecursionError) as exc:
            return type(exc).__name__, str(exc)

    assert outcome(bigjson.small_loads) == outcome(json.loads)
    assert outcome(bigjson.loads) == outcome(json.loads)


def encoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every value dumps hands the (ensure_ascii=False) C encoder from now on."""
    seen: list[Any] = []
    encode = bigjson._ENCODERS[False]

    def recording(value: Any) -> str:
        seen.append(value)
        return encode(value)

    monkeypatch.setitem(bigjson._ENCODERS, False, recording)
    return seen


def test_the_encoder_never_sees_the_big_string(monkeypatch: pytest.MonkeyPatch) -> None:
    # The point of bigjson: the C encoder's per-character pass is skipped for a big string
    seen = encoder_calls(monkeypatch)
    raw = bigjson.dumps([[BIG, 1], {"k": BIG}, EMBED], ensure_ascii=False)
    assert raw == reference([[BIG, 1], {"k": BIG}, EMBED], False)
    assert seen and all(value != BIG for value in seen)


def test_loads_parses_only_what_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    real = json.loads

    def recording(raw: Any) -> Any:
        parsed.append(len(raw))
        return real(raw)

    monkeypatch.setattr(bigjson.json, "loads", recording)
    assert bigjson.loads(b'[["' + B + b'"],{}]') == [[BIG], {}]
    assert parsed and max(parsed) < 100


# Characters that change how a string is written or read: every control character, the quote,
# the backslash, DEL (escaped with ensure_ascii only), non-ASCII ones of each width, a lone
# surrogate (not UTF-8), and a few that need nothing.
SPECIAL = [*map(chr, range(0x20)), '"', "\\", "\x7f", "é", "\u2028", "\ufeff", "𝄞", "\ud800", "a", " ", "/"]


def random_big_string(rng: random.Random, special: str) -> str:
    """A string past BIG (hex or text) with ``special`` at one or two random places, and at
    times one more special character."""
    text = rng.choice([os.urandom(bigjson.BIG // 2 + rng.randrange(64)).hex(), "word " * (bigjson.BIG // 5 + 1)])
    chars = list(text)
    extra = [rng.choice(SPECIAL)] if rng.random() < 0.3 else []
    for char in [special] * rng.randint(1, 2) + extra:
        chars.insert(rng.randrange(len(chars) + 1), char)
    return "".join(chars)


def same_outcome(ours: Callable[..., Any], theirs: Callable[..., Any], *args: Any) -> None:
    """Both give the same value for ``args``, or both raise the same kind of error."""
    try:
        expected = theirs(*args)
    except (ValueError, TypeError) as exc:  # UnicodeEncodeError and JSONDecodeError are ValueErrors
        with pytest.raises(type(exc)):
            ours(*args)
    else:
        assert ours(*args) == expected


@pytest.mark.parametrize("seed", range(4))
def test_random_strings_are_written_and_read_as_json_does(seed: int) -> None:
    rng = random.Random(seed)
    for special in [*SPECIAL, *SPECIAL, ""]:  # each alone about twice a seed, and a clean string
        text = random_big_string(rng, special)
        document = rng.choice([[[text], {}, EMBED], [[1, text], {"k": text}, EMBED], {"result": text}, text])
        for ensure_ascii in (True, False):
            same_outcome(bigjson.dumps, reference, document, ensure_ascii)
        text_form = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode(document)
        raw = text_form.encode("utf-8", "surrogatepass")  # a lone surrogate too, as json.loads reads it
        same_outcome(bigjson.loads, json.loads, raw)
        # The string written raw into the document, as a careless producer might: control
        # characters are then errors, DEL and the rest are read as they are
        if '"' not in text and "\\" not in text:
            bare = b'["' + text.encode("utf-8", "surrogatepass") + b'"]'
            same_outcome(bigjson.loads, json.loads, bare)


def test_containers_without_a_big_string_are_encoded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # One encoder call for the embed and one for the kwargs, not one per key and value
    seen = encoder_calls(monkeypatch)
    document = [[BIG, [1, "x"]], {"small": 1}, EMBED]
    assert bigjson.dumps(document, ensure_ascii=False) == reference(document, False)
    assert seen == [[1, "x"], {"small": 1}, EMBED]
