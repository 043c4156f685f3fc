"""Imports every model module so that metadata (and Alembic autogenerate) sees all tables."""

import app.agents.models
import app.auth.models
import app.billing.models
import app.billing.rebilling_models
import app.email.models
import app.integrations.models
import app.licensing.models
import app.ops.models
import app.widget.models  # noqa: F401
import jobs.models  # noqa: F401
import tenants.brand_assets
import tenants.models  # noqa: F401
