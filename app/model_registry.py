"""Imports every model module so that metadata (and Alembic autogenerate) sees all tables."""

import app.auth.models
import app.email.models
import app.licensing.models  # noqa: F401
import tenants.models  # noqa: F401
