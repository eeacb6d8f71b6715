"""The errors of job lookups and writes, named as in APScheduler 3 so that ``except`` clauses
carry over (APScheduler keeps them in ``apscheduler.jobstores.base``; so does
``taskq.beat.jobstores.base``)."""

from __future__ import annotations

from taskq.errors import TaskQError


class JobLookupError(TaskQError, KeyError):
    """No job (entry) with that id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job by the id of {job_id} was found")
        self.job_id = job_id

    def __str__(self) -> str:
        return str(self.args[0])


class ConflictingIdError(TaskQError, KeyError):
    """A job (entry) with that id exists already."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job identifier ({job_id}) conflicts with an existing job")
        self.job_id = job_id

    def __str__(self) -> str:
        return str(self.args[0])
