"""Imports every model module so that metadata (and Alembic autogenerate) sees all tables."""

import app.agents.models  # noqa: F401
import app.auth.models  # noqa: F401
import app.billing.models  # noqa: F401
import app.email.models  # noqa: F401
import app.integrations.models  # noqa: F401
import app.licensing.models  # noqa: F401
import tenants.models  # noqa: F401
