"""The pages and the fragments the live stream replaces (each one element id's content).

Every value goes through ``markup.render``, which escapes it: what a task's message carries is
shown as text. Actions are forms that POST with the CSRF token; the page's script sends them
without a reload, and they work without it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from taskq import states
from taskq.dashboard.markup import Safe, join, path_part, render, sparkline
from taskq.dashboard.state import REJECTED, FleetState, TaskFilter, TaskRecord

TASK_STATES = (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY, states.SUCCESS, states.FAILURE,
               states.REVOKED, REJECTED)
TASK_ROWS = 100
ARG_WIDTH = 80
NOTHING = Safe("")


def when(timestamp: float | None) -> Safe:
    if not timestamp:
        return Safe("-")
    stamp = time.gmtime(timestamp)
    return render('<time title="{full}">{short}</time>', full=time.strftime("%Y-%m-%d %H:%M:%S UTC", stamp),
                  short=time.strftime("%H:%M:%S", stamp))


def short(text: str | None, width: int = ARG_WIDTH) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def action_form(action: str, label: str, csrf: str, confirm: str | None = None, **fields: str) -> Safe:
    hidden = join(render('<input type="hidden" name="{k}" value="{v}">', k=k, v=v) for k, v in fields.items())
    ask = render(' data-confirm="{c}"', c=confirm) if confirm else NOTHING
    return render(
        '<form class="action" method="post" action="/actions/{action}"{ask}>'
        '<input type="hidden" name="csrf_token" value="{csrf}">{hidden}'
        '<button type="submit" class="{action}">{label}</button></form>',
        action=action, ask=ask, csrf=csrf, hidden=hidden, label=label,
    )


def table(headers: tuple[str, ...], rows: list[Safe], empty: str) -> Safe:
    if not rows:
        return render('<p class="empty">{empty}</p>', empty=empty)
    head = join(render("<th>{h}</th>", h=h) for h in headers)
    return render("<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>", head=head, rows=join(rows))


# -- fragments ------------------------------------------------------------------------------
def problems(state: FleetState) -> Safe:
    lines = [render('<p class="problem">{p}</p>', p=p) for p in sorted(state.problems.values())]
    if not state.task_events_seen:
        lines.append(Safe('<p class="note">No task events yet: tasks show up when workers run with '
                          '<code>-E</code> (worker_send_task_events).</p>'))
    return join(lines)


def workers(state: FleetState) -> Safe:
    now = state.clock()
    rows = []
    for w in state.workers():
        online = w.online(now)
        load = " ".join(f"{x:.2f}" for x in w.loadavg) or "-"
        rows.append(render(
            '<tr data-worker="{name}"><td>{name}</td><td class="{cls}">{status}</td><td>{host}</td><td>{pool}</td>'
            '<td class="num">{conc}</td><td class="num">{active}</td><td class="num">{processed}</td>'
            "<td>{load}</td><td>{beat}</td></tr>",
            name=w.hostname, cls="online" if online else "offline", status="online" if online else "offline",
            host=w.hostname.partition("@")[2] or w.hostname, pool=w.pool or "-",
            conc="-" if w.concurrency is None else w.concurrency, active=w.active, processed=w.processed,
            load=load, beat=when(w.last_heartbeat),
        ))
    headers = ("worker", "status", "host", "pool", "concurrency", "active", "processed", "load", "last heartbeat")
    return table(headers, rows, "No worker seen yet (workers send a heartbeat every 2 s).")


def queues(state: FleetState, csrf: str) -> Safe:
    rows = []
    for q in state.queues():
        rate_in, rate_out = sum(q.rate_in[-10:]) / 10, sum(q.rate_out[-10:]) / 10
        requeue = action_form("requeue", "requeue dead", csrf, queue=q.name) if q.dead else NOTHING
        rows.append(render(
            '<tr data-queue="{name}"><td>{name}</td><td class="num">{depth}</td><td class="num">{flight}</td>'
            '<td class="num">{delayed}</td><td class="num">{dead}</td><td class="num">{rin} / {rout}</td>'
            "<td>{spark}</td><td>{requeue}</td></tr>",
            name=q.name, depth="-" if q.depth is None else q.depth, flight=q.in_flight, delayed=q.delayed,
            dead="-" if q.dead is None else q.dead, rin=f"{rate_in:.1f}", rout=f"{rate_out:.1f}",
            spark=sparkline([q.rate_in, q.rate_out]), requeue=requeue,
        ))
    headers = ("queue", "depth", "in flight", "delayed", "dead letters", "in / out per s", "last minute", "")
    return table(headers, rows, "No queue known yet.")


def task_actions(task: TaskRecord, csrf: str) -> Safe:
    if task.state in (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY):
        return action_form("revoke", "revoke", csrf, task_id=task.id)
    if task.state == states.FAILURE:
        return action_form("retry", "retry", csrf, task_id=task.id)
    return NOTHING


def tasks(state: FleetState, where: TaskFilter, csrf: str) -> Safe:
    rows = [
        render(
            '<tr data-task-id="{id}"><td><a href="/tasks/{link}">{id_short}</a></td><td>{name}</td>'
            '<td class="state {state}">{state}</td><td class="args">{args}</td><td>{queue}</td><td>{worker}</td>'
            '<td>{received}</td><td class="num">{runtime}</td><td>{actions}</td></tr>',
            id=t.id, link=path_part(t.id), id_short=short(t.id, 13), name=t.name or "?", state=t.state,
            args=short(f"{t.args} {t.kwargs}".strip()), queue=t.queue or "-", worker=t.worker or "-",
            received=when(t.received), runtime="-" if t.runtime is None else f"{t.runtime:.3f}s",
            actions=task_actions(t, csrf),
        )
        for t in state.tasks(where, TASK_ROWS)
    ]
    headers = ("id", "task", "state", "arguments", "queue", "worker", "received", "runtime", "")
    return table(headers, rows, "No task matches." if where != TaskFilter() else "No task seen yet.")


def beat(state: FleetState, csrf: str) -> Safe:
    entries = state.beat()
    if entries is None:
        return Safe('<p class="empty">Beat entries not read yet.</p>')
    rows = [
        render(
            '<tr data-entry="{id}"><td>{id}</td><td>{task}</td><td>{schedule}</td><td>{next}</td><td>{last}</td>'
            '<td>{status}</td><td>{action}</td></tr>',
            id=e.id, task=e.task, schedule=e.schedule, next=e.next_run or "-", last=e.last_run or "-",
            status="paused" if e.paused else "active",
            action=action_form("resume" if e.paused else "pause", "resume" if e.paused else "pause", csrf,
                               entry_id=e.id),
        )
        for e in entries
    ]
    headers = ("entry", "task", "schedule", "next run", "last run", "status", "")
    return table(headers, rows, "No beat entry in the schedule store.")


def dead_letters(state: FleetState, csrf: str) -> Safe:
    letters = state.dead_letters()
    rows = [
        render(
            '<tr data-letter="{id}" data-task-id="{task_id}"><td>{queue}</td><td>{task}</td><td>{task_id}</td>'
            '<td class="args">{args}</td>'
            '<td class="reason">{reason}</td><td>{failed}</td><td>{requeue}</td></tr>',
            id=d.id, queue=d.queue, task=d.task_name or "?", task_id=d.task_id or "-", args=short(d.args),
            reason=d.reason, failed=when(d.failed_at),
            requeue=action_form("requeue", "requeue", csrf, queue=d.queue, letter_id=d.id),
        )
        for d in letters
    ]
    purge = action_form("purge-dead-letters", "purge all dead letters", csrf,
                        confirm="Delete every dead letter for good?") if letters else NOTHING
    headers = ("queue", "task", "task id", "arguments", "reason", "failed at", "")
    return join([table(headers, rows, "No dead letters."), purge])


def detail(state: FleetState, task_id: str, csrf: str) -> Safe:
    task = state.task(task_id)
    if task is None:
        return render('<p class="empty">No event of task {id} seen (yet).</p>', id=task_id)
    fields = (
        ("id", task.id), ("task", task.name), ("state", task.state), ("queue", task.queue or "-"),
        ("worker", task.worker or "-"), ("args", task.args), ("kwargs", task.kwargs),
        ("retries", task.retries), ("eta", task.eta or "-"), ("result", task.result or "-"),
        ("exception", task.exception or "-"),
        ("runtime", "-" if task.runtime is None else f"{task.runtime:.4f}s"),
        ("retried as", task.retried_as or "-"),
    )
    items = join(render('<dt>{k}</dt><dd class="field-{cls}">{v}</dd>', k=k, v=v,
                        cls=k.replace(" ", "-") + (f" state {task.state}" if k == "state" else ""))
                 for k, v in fields)
    timeline = join(render("<li>{at} <b>{what}</b> {who}</li>", at=when(at), what=what, who=who)
                    for at, what, who in task.timeline)
    trace = render('<h3>Traceback</h3><pre class="traceback">{tb}</pre>', tb=task.traceback) if task.traceback \
        else NOTHING
    return render('<dl class="task">{items}</dl><div class="buttons">{actions}</div>{trace}'
                  '<h3>Timeline</h3><ol class="timeline">{timeline}</ol>',
                  items=items, actions=task_actions(task, csrf), trace=trace, timeline=timeline)


# -- pages ----------------------------------------------------------------------------------
def main_fragments(state: FleetState, where: TaskFilter, csrf: str) -> dict[str, Callable[[], Safe]]:
    """Element id -> how to render its content now (the page and the stream share these)."""
    return {
        "problems": lambda: problems(state),
        "workers": lambda: workers(state),
        "queues": lambda: queues(state, csrf),
        "tasks": lambda: tasks(state, where, csrf),
        "beat": lambda: beat(state, csrf),
        "dead-letters": lambda: dead_letters(state, csrf),
    }


def detail_fragments(state: FleetState, task_id: str, csrf: str) -> dict[str, Callable[[], Safe]]:
    return {"problems": lambda: problems(state), "detail": lambda: detail(state, task_id, csrf)}


def filter_form(state: FleetState, where: TaskFilter) -> Safe:
    options = join(
        render('<option value="{v}"{sel}>{label}</option>', v=s, label=s or "any state",
               sel=Safe(" selected") if s == where.state else NOTHING)
        for s in ("", *TASK_STATES)
    )
    names = join(render('<option value="{n}">', n=n) for n in state.task_names())
    return render(
        '<form id="task-filter" method="get" action="/">'
        '<select name="state" aria-label="state">{options}</select>'
        '<input name="name" placeholder="task name" value="{name}" list="task-names" aria-label="task name">'
        '<datalist id="task-names">{names}</datalist>'
        '<input name="queue" placeholder="queue" value="{queue}" aria-label="queue">'
        '<input name="worker" placeholder="worker" value="{worker}" aria-label="worker">'
        '<button type="submit">filter</button></form>',
        options=options, names=names, name=where.name, queue=where.queue, worker=where.worker,
    )


def layout(title: str, csrf: str, stream: str, body: Safe) -> Safe:
    return render(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="csrf-token" content="{csrf}"><title>{title}</title>'
        '<link rel="stylesheet" href="/static/dashboard.css"><script src="/static/dashboard.js" defer></script>'
        '</head><body data-stream="{stream}"><header><a class="brand" href="/">taskq</a><nav>'
        '<a href="/#workers-section">workers</a><a href="/#queues-section">queues</a>'
        '<a href="/#tasks-section">tasks</a><a href="/#beat-section">beat</a>'
        '<a href="/#dead-letters-section">dead letters</a><a href="/metrics">metrics</a></nav>'
        '<span id="live" class="off">connecting</span></header>'
        '<div id="flash" role="status" aria-live="polite"></div><main>{body}</main></body></html>',
        csrf=csrf, title=title, stream=stream, body=body,
    )


def main_page(state: FleetState, where: TaskFilter, csrf: str) -> Safe:
    parts = {key: render_fn() for key, render_fn in main_fragments(state, where, csrf).items()}

    def section(key: str, title: str, extra: Safe = NOTHING) -> Safe:
        return render('<section id="{key}-section"><h2>{title}</h2>{extra}<div id="{key}">{content}</div></section>',
                      key=key, title=title, extra=extra, content=parts[key])

    body = join([
        render('<div id="problems">{p}</div>', p=parts["problems"]),
        section("workers", "Workers"), section("queues", "Queues"),
        section("tasks", "Tasks", filter_form(state, where)), section("beat", "Beat entries"),
        section("dead-letters", "Dead letters"),
    ])
    return layout("taskq dashboard", csrf, "/stream?view=main", body)


def detail_page(state: FleetState, task_id: str, csrf: str) -> Safe:
    body = render('<div id="problems">{p}</div><section><h2>Task {id}</h2><div id="detail">{d}</div></section>',
                  p=problems(state), id=task_id, d=detail(state, task_id, csrf))
    return layout(f"task {task_id}", csrf, f"/stream?view=task&id={path_part(task_id)}", body)
