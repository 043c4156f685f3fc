"""Imports every model module so that metadata (and Alembic autogenerate) sees all tables."""

import app.auth.models
import app.billing.models
import app.email.models  # noqa: F401
import tenants.models  # noqa: F401
