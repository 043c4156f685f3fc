"""Tasks: functions the worker may run, registered by name with their queue and retry policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobs.queues import ALL, DEFAULT


class TransientError(Exception):
    """A failure worth retrying (a timeout, a 5xx, a lock): RQ retries it with backoff."""


class PermanentError(Exception):
    """A failure that retrying cannot fix; recorded at once, never retried."""


@dataclass(frozen=True)
class Task:
    name: str
    func: Callable[..., Any]
    queue: str
    tenant_scoped: bool
    retry_intervals: tuple[int, ...]
    # RQ's limit for one run, in seconds; a function (called at enqueue time, in the app
    # context) when it follows a setting.
    timeout: int | Callable[[], int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def job_timeout(self) -> int | None:
        return self.timeout() if callable(self.timeout) else self.timeout


_TASKS: dict[str, Task] = {}


def task(name: str, *, queue: str = DEFAULT, tenant_scoped: bool = True,
         retry_intervals: tuple[int, ...] = (10, 60, 300),
         timeout: int | Callable[[], int] | None = None):
    """Register ``func`` as task ``name``. Tenant-scoped tasks refuse to run without a tenant."""
    if queue not in ALL:
        raise ValueError(f"unknown queue {queue!r}")

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        if name in _TASKS and _TASKS[name].func is not func:
            raise ValueError(f"task {name!r} is registered twice")
        _TASKS[name] = Task(name, func, queue, tenant_scoped, tuple(retry_intervals), timeout)
        return func

    return register


def get_task(name: str) -> Task:
    if name not in _TASKS:
        # Importing every task module pulls in LangChain: a web process that enqueues a
        # task whose module it has already imported should not pay for that.
        load_all()
    try:
        return _TASKS[name]
    except KeyError:
        raise PermanentError(f"unknown task {name!r}") from None


def load_all() -> None:
    """Import every module that registers tasks (the worker needs them all)."""
    from jobs import tasks  # noqa: F401
