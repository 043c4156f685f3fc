"""Every module that registers tasks; the worker imports this once."""

import app.agents.tasks
import app.auth.tasks
import app.billing.rebilling_tasks
import app.billing.tasks
import app.email.tasks
import app.integrations.tasks
import app.licensing.tasks  # noqa: F401
import jobs.diagnostics
import jobs.durable  # noqa: F401
import tenants.tasks  # noqa: F401
