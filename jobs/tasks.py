"""Every module that registers tasks; the worker imports this once."""

import app.agents.tasks  # noqa: F401
import app.auth.tasks  # noqa: F401
import app.billing.tasks  # noqa: F401
import app.email.tasks  # noqa: F401
import app.integrations.tasks  # noqa: F401
import app.licensing.tasks  # noqa: F401
import jobs.diagnostics  # noqa: F401
