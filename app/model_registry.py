"""Imports every model module so that metadata (and Alembic autogenerate) sees all tables."""

import app.agents.models  # noqa: F401
import app.auth.models  # noqa: F401
import app.billing.models  # noqa: F401
import app.email.models  # noqa: F401
import app.integrations.models  # noqa: F401
import app.licensing.models  # noqa: F401
import app.widget.models  # noqa: F401
import jobs.models  # noqa: F401
import tenants.brand_assets  # noqa: F401
import tenants.models  # noqa: F401
