"""Chord counting and groups for the SQL result backend (``db+``: taskq/backends/database.py),
as a mixin: ``class DatabaseBackend(ChordParts, ResultBackend)``.

A chord's parts live in ``taskq_chord_parts`` (key, member = header task id, value, expires),
created on first use beside the backend's tables. One transaction per finished header task:
first the chord's row in ``taskq_counters`` is upserted, which locks it until the commit, so
concurrent reports of one chord take turns (under READ COMMITTED or REPEATABLE READ alike,
the count that follows sees every part committed before); then the part is inserted unless
its task id is there, and the parts are counted. Chord sizes go in the same table (key
``<group key>.s``), groups in Celery's ``celery_tasksetmeta``.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

PARTS_TABLE = "taskq_chord_parts"


class ChordParts:
    supports_chords = True

    if TYPE_CHECKING:  # provided by DatabaseBackend
        sa: Any
        metadata: Any
        counters: Any
        group: Any
        dialect: str
        expires: float

        def _begin(self) -> AbstractContextManager[Any]: ...
        def group_key_for(self, group_id: str) -> str: ...
        @property
        def engine(self) -> Any: ...

    def _parts_table(self) -> Any:
        schema = self.metadata.schema
        table = self.metadata.tables.get(f"{schema}.{PARTS_TABLE}" if schema else PARTS_TABLE)
        if table is None:
            sa = self.sa
            table = sa.Table(
                PARTS_TABLE,
                self.metadata,
                sa.Column("key", sa.String(255), primary_key=True),
                sa.Column("member", sa.String(155), primary_key=True),
                sa.Column("value", sa.LargeBinary, nullable=False),
                sa.Column("expires", sa.Float, nullable=False),
            )
        if not getattr(self, "_parts_created", False):
            with self._begin() as conn:
                table.create(conn, checkfirst=True)
            self._parts_created = True
        return table

    def _chord_add(self, key: str, member: str, value: bytes, ttl: float) -> int:
        from taskq.backends.db_tables import _insert, counter_upsert  # type: ignore[import-not-found, unused-ignore]  # db+ backend: on main

        parts, now = self._parts_table(), time.time()
        with self._begin() as conn:
            conn.execute(counter_upsert(self.dialect, self.counters, key, now, now + ttl))  # the chord's lock
            insert = _insert(self.dialect)(parts).values(key=key, member=member, value=value, expires=now + ttl)
            if self.dialect in ("mysql", "mariadb"):
                insert = insert.prefix_with("IGNORE")
            else:
                insert = insert.on_conflict_do_nothing(index_elements=["key", "member"])
            conn.execute(insert)
            count = self.sa.select(self.sa.func.count()).select_from(parts).where(parts.c.key == key)
            return int(conn.execute(count).scalar_one())

    def _chord_members(self, key: str) -> list[bytes]:
        parts = self._parts_table()
        with self._begin() as conn:
            rows = conn.execute(self.sa.select(parts.c.value).where(parts.c.key == key)).all()
        return [bytes(row.value) for row in rows]

    def _chord_delete(self, key: str) -> None:
        parts = self._parts_table()
        with self._begin() as conn:
            conn.execute(self.sa.delete(parts).where(parts.c.key == key))
            conn.execute(self.sa.delete(self.counters).where(self.counters.c.key == key))

    # -- chord sizes and groups: not task rows ---------------------------------------------------
    def set_chord_size(self, group_id: str, size: int) -> None:
        self._chord_add(self.group_key_for(group_id) + ".s", "size", str(size).encode(), self.expires)

    def chord_size(self, group_id: str) -> int | None:
        values = self._chord_members(self.group_key_for(group_id) + ".s")
        return int(values[0]) if values else None

    def save_group(self, group_id: str, document: dict[str, Any]) -> None:
        from taskq.backends.db_tables import upsert  # type: ignore[import-not-found, unused-ignore]  # db+ backend: on main

        row = {
            "taskset_id": group_id,
            "result": json.dumps(document, separators=(",", ":")).encode(),
            "date_done": datetime.now(timezone.utc).replace(tzinfo=None),
        }
        with self._begin() as conn:
            conn.execute(upsert(self.dialect, self.group, [row], "taskset_id", ["result", "date_done"]))

    def restore_group(self, group_id: str) -> dict[str, Any] | None:
        g = self.group.c
        with self._begin() as conn:
            raw = conn.execute(self.sa.select(g.result).where(g.taskset_id == group_id)).scalar_one_or_none()
        return None if raw is None else dict(json.loads(raw))

    def forget_group(self, group_id: str) -> None:
        with self._begin() as conn:
            conn.execute(self.sa.delete(self.group).where(self.group.c.taskset_id == group_id))
