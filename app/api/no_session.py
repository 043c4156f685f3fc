"""No cookie session for /api requests.

The API authenticates every request with a bearer credential; the page session (flask-login,
CSRF) means nothing there. Flask still opened it on every request — the cookie parsed, a
signing serializer built — and saved it after. API paths get Flask's null session instead:
empty, never saved, and a write to it fails loudly rather than silently setting a cookie an
API client should never depend on.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface, SessionMixin

API_PREFIX = "/api/"


class PageOnlySessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path.startswith(API_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)
