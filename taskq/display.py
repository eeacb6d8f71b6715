"""Text fit to show in logs, errors and CLI listings: secrets hidden, control characters escaped.

Every place that shows a URL goes through ``redact``; every place that shows a string taken
from a message (task id, task name, dead-letter reason) goes through ``printable``. One helper
each, so a new log line cannot forget one rule that the others keep.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, unquote_plus

MASK = "***"

# scheme://user:password@ ... the userinfo runs to the last "@" of the URL, so a password
# that holds an unescaped "/" or ":" is still hidden whole; ";" and a next "://" end it
# (kombu's failover lists "amqp://u:p@h1;amqp://u:p@h2").
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>(?:(?!://)[^\s'\"<>;])*)@")
# Query options that carry a secret (redis-py reads ?password=, kombu ?password= too).
_SECRET_OPTION = re.compile(r"(?P<key>[?&;](?:password|passwd|pass|secret)=)(?P<value>[^&#\s'\"]*)", re.IGNORECASE)
# pika's ssl_options: a URL-encoded dict literal that may hold the key file's password.
_SSL_OPTIONS = re.compile(r"(?P<key>[?&;]ssl_options=)(?P<value>[^&#\s'\"]*)", re.IGNORECASE)
# C0 and C1 control characters, DEL and the Unicode line separators; the backslash too, so an escape cannot be forged.
_UNPRINTABLE = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\\\]")


def redact(text: str) -> str:
    """``text`` (a URL, or a message that quotes URLs) with every password replaced by ***."""
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _SSL_OPTIONS.sub(_mask_ssl_options, text)
    return _SECRET_OPTION.sub(lambda m: m["key"] + MASK, text)


def _mask_ssl_options(match: re.Match[str]) -> str:
    return match["key"] + MASK if "password" in unquote_plus(match["value"]).lower() else match[0]


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, password = match["userinfo"].partition(":")
    if not colon or not password:
        return match[0]
    return f"{match['scheme']}{user}:{MASK}@"


def secrets_of(url: str) -> list[str]:
    """The passwords a URL holds, as written and percent-decoded (a driver's error may quote
    either): what ``scrub`` removes from text that does not show the URL itself."""
    found = []
    for match in _USERINFO.finditer(url):
        password = match["userinfo"].partition(":")[2]
        if password:
            found += [password, unquote(password)]
    for match in _SECRET_OPTION.finditer(url):
        if match["value"]:
            found += [match["value"], unquote(match["value"])]
    return sorted(set(found), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's passwords hidden wherever they appear (driver errors)."""
    text = redact(text)
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return text


def printable(value: object) -> str:
    """An untrusted string for one log line: newlines, ANSI escapes and other control
    characters (and the backslash) shown as Python escapes, so a task id cannot start a
    forged log line or recolour a terminal."""
    return _UNPRINTABLE.sub(_escape_char, str(value))


def _escape_char(match: re.Match[str]) -> str:
    char = match[0]
    named = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named:
        return named
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


class OneLineRecords(logging.Filter):
    """Renders each record's message with ``printable``: attached to a logger whose lines
    quote message fields (the worker's), so a task id holding "\\n" or an ANSI escape cannot
    forge a line or recolour a terminal, whatever handler the application configured.
    A traceback (``exc_info``) is formatted by the handler afterwards and keeps its lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        rendered = printable(message)
        if rendered != message:
            record.msg, record.args = rendered, None
        return True
