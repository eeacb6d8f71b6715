"""chain, group and chord: signatures of signatures, in Celery's dict form.

Each ``prepare`` freezes every task id up front (so results exist before anything runs and a
worker sending a later step reuses the frozen id) and returns the publications that start the
workflow; the rest travels inside those messages' embed (chain, chord, callbacks).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from taskq.canvas import ids
from taskq.canvas.signatures import Signature, signature
from taskq.errors import ConfigurationError

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.brokers.base import Publication


def _members(items: Iterable[Any], app: TaskQ | None) -> list[Signature]:
    return [signature(item, app) for item in items]


def _app_of(sigs: Iterable[Signature]) -> TaskQ | None:
    return next((s.app for s in sigs if s.app is not None), None)


class _Container(Signature):
    """A signature whose task is Celery's builtin name and whose members are in kwargs."""

    builtin = ""

    def __init__(self, members: list[Signature], kwargs: dict[str, Any], app: TaskQ | None, **options: Any) -> None:
        super().__init__(self.builtin, (), kwargs, options, app=app or _app_of(members))

    def _adopt(self, sig: Signature) -> Signature:
        if sig.app is None:
            sig.app = self.app
        return sig


class _TaskList(_Container):
    """chain and group: members given as arguments or as one iterable, kept in kwargs['tasks']."""

    def __init__(self, *tasks: Any, app: TaskQ | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], dict) and isinstance(tasks[0], Iterable):
            tasks = tuple(tasks[0])
        members = _members(tasks, app)
        super().__init__(members, {"tasks": members}, app, **options)

    @property
    def tasks(self) -> list[Signature]:
        return [self._adopt(signature(t, self.app)) for t in self.kwargs.get("tasks", [])]


class chain(_TaskList):
    """``chain(a.s(1), b.s(), c.s())``: each result becomes the next task's first argument."""

    subtask_kind = "chain"
    builtin = "celery.chain"

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, Signature):
            return NotImplemented
        tail = other.tasks if isinstance(other, chain) else [other]
        return chain(*self.tasks, *tail, app=self.app, **self.options)

    def _steps(self) -> list[Signature]:
        """Nested chains flattened; a group followed by a step becomes a chord (Celery's rule)."""
        flat: list[Signature] = []
        for step in self.tasks:
            flat.extend(step._steps() if isinstance(step, chain) else [step])
        steps: list[Signature] = []
        for step in flat:
            if steps and isinstance(steps[-1], group):  # a group after it too: the body is a group
                steps[-1] = chord(steps[-1], step, app=self.app)
            else:
                steps.append(step)
        return steps

    def freeze(self, task_id: str | None = None, **options: Any) -> Any:
        result, _ = self._frozen(task_id, **options)
        return result

    def _frozen(self, task_id: str | None, **options: Any) -> tuple[Any, list[Signature]]:
        """Freeze every step, last first: the last takes the chain's id, group and chord; link
        goes on the last, link_error on every step; each result's parent is the step before.
        The frozen steps are kept, so freezing again (then sending) gives the same ids."""
        steps = self._steps()
        if not steps:
            raise ConfigurationError("an empty chain cannot be sent")
        self.options.update({k: v for k, v in options.items() if v is not None})
        opts = dict(self.options)
        task_id = task_id or opts.pop("task_id", None)
        opts.pop("task_id", None)
        errbacks = list(opts.pop("link_error", None) or [])
        last_only = {k: opts.pop(k) for k in ("group_id", "group_index", "chord", "link") if k in opts}
        results: list[Any] = []
        for position in range(len(steps) - 1, -1, -1):
            step = steps[position]
            for errback in errbacks:
                if errback not in step.options.get("link_error", []):
                    step.link_error(errback)
            last = position == len(steps) - 1
            results.insert(0, step.freeze(task_id if last else None, **(dict(opts, **last_only) if last else opts)))
        for earlier, later in itertools.pairwise(results):
            later.parent = earlier
        self["kwargs"] = {**self.kwargs, "tasks": steps}
        self.options["task_id"] = results[-1].id
        return results[-1], steps

    def prepare(
        self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> tuple[Any, list[Publication]]:
        chained = options.pop("chain", None) or []  # this chain is itself a step of an outer one
        sig = self.clone()
        assert isinstance(sig, chain)
        result, steps = sig._frozen(options.pop("task_id", None), **options)
        first, rest = steps[0], steps[1:]
        remaining = [*chained, *reversed(rest)]  # stored reversed: the worker pops the next
        _, publications = first.prepare([*args, *self.args], kwargs, **({"chain": remaining} if remaining else {}))
        return result, publications


class group(_TaskList):
    """``group(a.s(1), a.s(2))``: run in parallel; ``apply_async`` returns a GroupResult."""

    subtask_kind = "group"
    builtin = "celery.group"

    def __len__(self) -> int:  # type: ignore[override]  # the number of members, not of dict keys
        return len(self.kwargs.get("tasks", []))

    def freeze(self, task_id: str | None = None, **options: Any) -> Any:
        from taskq.canvas.results import GroupResult

        self.options.update({k: v for k, v in options.items() if v is not None})
        opts = dict(self.options)
        group_id = task_id or opts.pop("task_id", None) or ids.new_id()
        opts.pop("task_id", None)
        opts.pop("group_index", None)  # a group inside a group: its members are indexed by it
        opts.pop("group_id", None)
        self.options["task_id"] = group_id
        members = self.tasks
        results = [m.freeze(None, group_id=group_id, group_index=i, **opts) for i, m in enumerate(members)]
        self["kwargs"] = {**self.kwargs, "tasks": members}
        return GroupResult(group_id, results, self.resolve_app())

    def prepare(
        self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> tuple[Any, list[Publication]]:
        sig = self.clone()
        assert isinstance(sig, group)
        options.pop("chain", None)  # a group ends a chain (one followed by a step is a chord)
        result = sig.freeze(options.pop("task_id", None), **options)
        publications: list[Publication] = []
        for member in sig.tasks:
            _, pubs = member.prepare([*args, *self.args], kwargs)
            publications.extend(pubs)
        return result, publications


class chord(_Container):
    """``chord(header, body)``: the body runs once, with the header's results in order."""

    subtask_kind = "chord"
    builtin = "celery.chord"

    def __init__(self, header: Any, body: Any = None, *, app: TaskQ | None = None, **options: Any) -> None:
        head = header if isinstance(header, group) else group(*_members(header, app), app=app)
        tail = None if body is None else signature(body, app)
        super().__init__([*head.tasks, *([tail] if tail else [])], {"header": head, "body": tail, "kwargs": {}}, app,
                         **options)

    @property
    def header(self) -> group:
        raw = self.kwargs["header"]
        if isinstance(raw, group):
            self._adopt(raw)
            return raw
        head = signature(raw, self.app) if isinstance(raw, dict) else group(*_members(raw, self.app), app=self.app)
        if not isinstance(head, group):
            raise ConfigurationError(f"a chord's header must be a group or a list, not {raw!r}")
        self["kwargs"] = {**self.kwargs, "header": head}  # Celery writes a list or a group dict
        return head

    @property
    def body(self) -> Signature:
        raw = self.kwargs.get("body")
        if raw is None:
            raise ConfigurationError("a chord needs a body: chord(header, body) or chord(header)(body)")
        body = self._adopt(signature(raw, self.app))
        self["kwargs"] = {**self.kwargs, "body": body}
        return body

    def __call__(self, body: Any = None, **options: Any) -> Any:  # type: ignore[override]
        """``chord(header)(body)``: Celery's way of sending with the body given late."""
        return chord(self.header, body if body is not None else self.body, app=self.app).apply_async(**options)

    def freeze(self, task_id: str | None = None, **options: Any) -> Any:
        result, _, _ = self._frozen(task_id, **options)
        return result

    def _frozen(self, task_id: str | None, **options: Any) -> tuple[Any, group, Signature]:
        """Freeze the body (it takes the chord's id, link, link_error, chain, and the group it
        belongs to), then the header, each member carrying the frozen body as its ``chord``."""
        backend = self.resolve_app().backend
        if backend is None or not backend.supports_chords:
            what = "no result backend" if backend is None else f"a {type(backend).__name__}, which cannot count"
            raise ConfigurationError(
                "a chord needs a result backend that counts its header tasks (sqlite, redis, memory, db); "
                f"this app has {what}"
            )
        self.options.update({k: v for k, v in options.items() if v is not None})
        opts = dict(self.options)
        header, body = self.header, self.body
        # the body reports for the whole chord: to a group or an outer chord it is a member of
        body_keys = ("link", "link_error", "chain", "chord", "group_id", "group_index")
        body_opts = {k: opts.pop(k) for k in body_keys if k in opts}
        body_id = task_id or opts.pop("task_id", None)
        opts.pop("task_id", None)
        body_result = body.freeze(body_id, **body_opts)
        body["chord_size"] = len(header)
        header_result = header.freeze(header.id, chord=body, **opts)
        body_result.parent = header_result
        self.options["task_id"] = body_result.id
        return body_result, header, body

    def prepare(
        self, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> tuple[Any, list[Publication]]:
        sig = self.clone()
        assert isinstance(sig, chord)
        result, header, body = sig._frozen(options.pop("task_id", None), **options)
        if not len(header):
            _, pubs = body.prepare(([],))
            return result, pubs
        backend = sig.resolve_app().backend
        assert backend is not None  # checked by _frozen
        backend.set_chord_size(str(header.id), len(header))
        publications: list[Publication] = []
        for member in header.tasks:
            _, pubs = member.prepare([*args, *self.args], kwargs)
            publications.extend(pubs)
        return result, publications


KINDS: dict[str, type[Signature]] = {"chain": chain, "group": group, "chord": chord}
