"""Imports every model module so that metadata (and Alembic autogenerate) sees all tables."""

import app.agents.models
import app.auth.models
import app.email.models  # noqa: F401
import tenants.models  # noqa: F401
