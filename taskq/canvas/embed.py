"""Send options that become a message's canvas fields: the embed and the group headers.

Celery's ``apply_async(link=, link_error=, chain=, chord=, group_id=, group_index=)`` map
onto the body's third element ``{callbacks, errbacks, chain, chord}`` and the ``group`` and
``group_index`` headers (REFERENCE.md section 1). Signatures are dicts, so the embed is
plain JSON.
"""

from __future__ import annotations

from typing import Any

CANVAS_OPTIONS = frozenset({"link", "link_error", "chain", "chord", "group_id", "group_index"})


def _listed(value: Any) -> list[Any] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, dict) else list(value)
    return items or None


def embed_of(options: dict[str, Any]) -> dict[str, Any] | None:
    """The embed for these send options; None when there is nothing to embed."""
    if not options.keys() & {"link", "link_error", "chain", "chord"}:
        return None
    embed = {
        "callbacks": _listed(options.get("link")),
        "errbacks": _listed(options.get("link_error")),
        "chain": _listed(options.get("chain")),
        "chord": options.get("chord"),
    }
    return embed if any(v is not None for v in embed.values()) else None


def group_headers(options: dict[str, Any]) -> dict[str, Any] | None:
    """The ``headers`` option with the ``group`` and ``group_index`` headers of a group member."""
    headers = options.get("headers")
    if options.get("group_id") is None:
        return headers  # type: ignore[no-any-return]
    return {**(headers or {}), "group": options["group_id"], "group_index": options.get("group_index")}
