"""Logging: JSON lines in production, readable lines in development; both carry the request,
tenant, user and job ids, added by one filter."""

from __future__ import annotations

import json
import logging
import re
import uuid

from flask import Flask, g, has_app_context, request

from app.settings import Settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from tenants.context import current_or_none

        tenant = current_or_none()
        record.tenant = tenant.slug if tenant else "-"
        record.request_id = "-"
        record.user_id = "-"
        if has_app_context():  # g: a request's, or the validation lane's (app context only)
            record.request_id = g.get("request_id", "-")
            record.user_id = g.get("log_user_id", "-")
        try:
            from rq import get_current_job

            job = get_current_job()
        except Exception:
            job = None
        record.job_id = job.id if job is not None else "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "tenant": getattr(record, "tenant", "-"),
            "user_id": getattr(record, "user_id", "-"),
            "job_id": getattr(record, "job_id", "-"),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry)


TEXT_FORMAT = ("%(asctime)s %(levelname)-7s [%(request_id)s tenant=%(tenant)s "
               "user=%(user_id)s job=%(job_id)s] %(name)s: %(message)s")


def configure(settings: Settings) -> None:
    """Configure the root logger once per process (create_app and the worker call it)."""
    root = logging.getLogger()
    if any(getattr(h, "_albedo", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._albedo = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Alembic announces every autogenerate plugin it loads; that is noise, not news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def request_id_for(incoming: str) -> str:
    """The caller's X-Request-ID when it is a sane token, else a new one."""
    return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def init_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        g.request_id = request_id_for(request.headers.get("X-Request-ID", ""))

    @app.after_request
    def _echo_request_id(response):
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        return response
