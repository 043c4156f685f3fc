"""The Flask application factory. Importing this package does nothing; create_app() builds."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _engine_options(settings: Settings) -> dict:
    if settings.is_sqlite:
        # The web process and the worker share the file: wait on locks instead of failing.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from ``settings`` (default: read from the environment and validated)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=settings.instance_path,
                template_folder=str(ROOT / "templates"), static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TESTING=settings.env == "testing",
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.url_scheme == "https",
        REMEMBER_COOKIE_SECURE=settings.url_scheme == "https",
        REMEMBER_COOKIE_HTTPONLY=True,
        # CSRF is enforced for pages below; the API authenticates with tokens instead.
        WTF_CSRF_CHECK_DEFAULT=False,
        API_TITLE="Albedo API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        # No smorest routes: app/web/api_docs.py serves the document and the docs page per
        # tenant (in the reseller's name), with Swagger UI from a pinned package, no CDN.
        OPENAPI_URL_PREFIX=None,
        RATELIMIT_STRATEGY="sliding-window-counter",
        # X-RateLimit-* come from app.api.budgets, out of the budgets' own round trip.
        RATELIMIT_HEADERS_ENABLED=False,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_KEY_PREFIX=settings.extra.get("ALBEDO_QUEUE_PREFIX", "") + "albedo-rl",
    )
    app.extensions["albedo.settings"] = settings
    from app.api import arguments
    from app.api.no_session import PageOnlySessionInterface
    from app.api.serialization import FastJSONProvider

    app.session_interface = PageOnlySessionInterface()
    app.json = FastJSONProvider(app)
    arguments.install()

    from app import logs

    logs.configure(settings)
    logs.init_request_ids(app)
    _init_extensions(app, settings)

    import tenants.web

    tenants.web.init_app(app)
    _register_features(app)

    from app import errors

    errors.init_app(app)
    from app.cli import albedo_cli

    app.cli.add_command(albedo_cli)
    from app import ops

    ops.init_app(app)  # metrics, error tracking, the system page
    from app.api import lane
    from app.licensing.lane import ValidationLane

    lane.install(app)  # warm authenticated reads (app/api/lane)
    app.wsgi_app = ValidationLane(app, app.wsgi_app)  # type: ignore[method-assign]
    if settings.proxy_count:  # outermost: the lane sees the client's address and host too
        n = settings.proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)
    return app


def _init_extensions(app: Flask, settings: Settings) -> None:
    from app import model_registry  # noqa: F401  (every model, for metadata and migrations)
    from app.extensions import api, csrf, db, login_manager, migrate
    from tenants.isolation import install_isolation

    install_isolation()
    db.init_app(app)
    if settings.is_sqlite:
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    api.init_app(app)


def _register_features(app: Flask) -> None:
    from app.api import limits
    from app.extensions import api, csrf

    # After tenant resolution, so the per-tenant budget knows the tenant. With REDIS_URL this
    # is only a string; with the embedded default it starts the embedded Redis if needed.
    app.config["RATELIMIT_STORAGE_URI"] = limits.storage_uri(app.extensions["albedo.settings"])
    limits.init_app(app)
    import tenants.web
    from app.auth import generations, guard

    generations.install()  # committed identity changes invalidate cached principals
    limits.limiter.add_piggyback(tenants.web.confirm_tenant_generation)
    limits.limiter.add_piggyback(guard.confirm_cached_principal)
    from app.api import conventions

    conventions.init_app(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description":
                       "An access token from POST /api/v1/auth/token, or an API key (ak_…)."})

    @app.before_request
    def _csrf_for_pages() -> None:
        # After tenant resolution: an unknown host is a 404 before it is a CSRF failure.
        if request.method not in ("GET", "HEAD", "OPTIONS") and not request.path.startswith(
                "/api/"):
            csrf.protect()

    from app.auth import (
        account_views,
        audit_api,
        audit_views,
        key_views,
        oauth,
        oauth_views,
        users_api,
    )
    from app.auth import api as auth_api
    from app.auth import views as auth_views
    from app.email import views as email_views
    from app.health import bp as health_bp
    from app.licensing import api as licensing_api
    from app.licensing import public_api as licensing_public
    from app.licensing import views as licensing_views
    from app.web import api_docs, assets, nav
    from app.web import views as web_views
    from tenants import api as tenants_api
    from tenants import platform_api
    from tenants import views as tenants_views

    limits.limiter.exempt(health_bp)
    app.register_blueprint(health_bp)
    assets.init_app(app)
    limits.limiter.exempt(assets.bp)  # a page's stylesheet and script are not API calls
    api_docs.init_app(app)
    app.register_blueprint(web_views.bp)
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(account_views.bp)
    app.register_blueprint(oauth_views.bp)
    nav.register(app, "Account", "account.settings")
    nav.register(app, "Sign-in settings", "oauth.sign_in_settings", roles=("RESELLER",))
    nav.register(app, "API keys", "api_keys_page.index", group="Connect")
    nav.register(app, "Branding", "tenants_pages.branding", roles=("RESELLER",),
                 group="Settings")
    nav.register(app, "Domains", "tenants_pages.domains", roles=("RESELLER",),
                 group="Settings")
    nav.register(app, "Audit log", "audit_page.index", roles=("RESELLER", "ADMIN"),
                 group="Settings")
    nav.register(app, "Resellers", "tenants_pages.resellers", roles=("ADMIN",),
                 group="Platform")
    nav.register(app, "Outbox", "email.outbox", roles=("ADMIN",), group="Platform")
    oauth.init_app(app)
    app.register_blueprint(email_views.bp)
    app.register_blueprint(key_views.bp)
    app.register_blueprint(audit_views.bp)
    app.register_blueprint(tenants_views.bp)
    from app.auth import audit_watch, people_api, people_views, sign_in_as_views

    audit_watch.install()  # after the isolation guard: its before_flush runs first

    app.register_blueprint(people_views.bp)
    sign_in_as_views.init_app(app)
    nav.register(app, "Customers", "people.customers", ("RESELLER",))
    nav.register(app, "Team", "people.team", ("RESELLER",))
    api.register_blueprint(people_api.blp, url_prefix="/api/v1/invitations")
    nav.init_app(app)
    api.register_blueprint(tenants_api.blp, url_prefix="/api/v1/tenant")
    api.register_blueprint(auth_api.auth_blp, url_prefix="/api/v1/auth")
    api.register_blueprint(auth_api.keys_blp, url_prefix="/api/v1/api-keys")
    api.register_blueprint(auth_api.me_blp, url_prefix="/api/v1/me")
    api.register_blueprint(audit_api.blp, url_prefix="/api/v1/audit-events")
    api.register_blueprint(users_api.blp, url_prefix="/api/v1/users")
    api.register_blueprint(platform_api.blp, url_prefix="/api/v1/platform/resellers")
    from app.agents import api as agents_api
    from app.agents import openai_compat
    from app.agents import views as agents_views

    app.register_blueprint(agents_views.bp)
    nav.register(app, "Agents", "agents_pages.index", roles=("RESELLER", "USER"))
    nav.register(app, "Usage", "agents_pages.usage_page", roles=("RESELLER", "USER"))

    api.register_blueprint(agents_api.agents_blp, url_prefix="/api/v1/agents")
    api.register_blueprint(agents_api.executions_blp, url_prefix="/api/v1/executions")
    api.register_blueprint(agents_api.conversations_blp, url_prefix="/api/v1/conversations")
    api.register_blueprint(openai_compat.blp, url_prefix="/api/v1/openai")

    from app import billing

    billing.init_app(app)

    from app.integrations import api as integrations_api
    from app.integrations import views as integrations_views
    from app.integrations.cli import webhooks_cli

    app.register_blueprint(integrations_views.bp)
    nav.register(app, "Integrations", "integrations.endpoints")
    api.register_blueprint(integrations_api.blp, url_prefix="/api/v1/webhooks")
    api.register_blueprint(integrations_api.hooks_blp, url_prefix="/api/v1/hooks")

    app.cli.add_command(webhooks_cli)

    from app.licensing import freshness

    freshness.install()  # committed licensing changes invalidate validation snapshots
    from app.licensing import signing

    signing.install()  # a new tenant's first signing key is made with it
    app.register_blueprint(licensing_public.wellknown_bp)
    api.register_blueprint(licensing_public.validate_blp, url_prefix="/api/v1/licenses")
    api.register_blueprint(licensing_public.machines_blp, url_prefix="/api/v1/machines")
    api.register_blueprint(licensing_api.products_blp, url_prefix="/api/v1/products")
    api.register_blueprint(licensing_api.policies_blp, url_prefix="/api/v1/policies")
    api.register_blueprint(licensing_api.licenses_blp, url_prefix="/api/v1/licenses")
    app.register_blueprint(licensing_views.bp)
    app.register_blueprint(licensing_views.customer_bp)
    licensing_views.register_nav(app)

    from app import widget

    widget.init_app(app)
