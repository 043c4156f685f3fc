"""Background jobs on RQ: queues, the enqueue contract, the worker, the task registry.

The contract: a job is a registered task name plus JSON arguments (ids, never ORM objects)
plus the tenant id it acts for. The worker restores that tenant before the task runs.
"""

from jobs.enqueue import enqueue
from jobs.registry import PermanentError, TransientError, task

__all__ = ["PermanentError", "TransientError", "enqueue", "task"]
