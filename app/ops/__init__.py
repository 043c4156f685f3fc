"""Operations: Prometheus metrics, error tracking, the platform's system page, backups.

``init_app`` wires it into the app factory; nothing happens at import.
"""

from __future__ import annotations

import logging

from flask import Flask

log = logging.getLogger(__name__)


_at_exit = False


def _forget_this_process_at_exit() -> None:
    """A process that ends normally drops its live gauges (pool use) from the shared
    directory; gunicorn's ``child_exit`` hook covers workers that are killed (README)."""
    global _at_exit
    if not _at_exit:
        import atexit

        from app.ops.metrics import mark_process_dead

        atexit.register(mark_process_dead)
        _at_exit = True


def init_app(app: Flask) -> None:
    settings = app.extensions["albedo.settings"]
    from app.ops import instrument, metrics, observers, sentry
    from app.ops.exporter import bp as metrics_bp

    sentry.init(settings)
    if settings.prometheus_multiproc_dir and not metrics.multiprocess_enabled():
        log.warning("PROMETHEUS_MULTIPROC_DIR is set but prometheus_client was imported "
                    "before it was: each process exports only its own counters")
    if metrics.multiprocess_enabled():
        _forget_this_process_at_exit()
    instrument.init_app(app)
    observers.install()
    from app.api.limits import limiter

    limiter.exempt(metrics_bp)
    app.register_blueprint(metrics_bp)

    from app.extensions import api
    from app.ops import system_api, system_views
    from app.web import nav

    app.register_blueprint(system_views.bp)
    nav.register(app, "System", "ops_system.system_page", roles=("ADMIN",))
    api.register_blueprint(system_api.blp, url_prefix="/api/v1/platform/system")
