"""The read lane's WSGI layer: a warm, well-formed read answered before Flask's pipeline.

A read qualifies when everything the Flask route would check first is already known to pass
without a query: a GET of a registered read (``routes``), on the host of an active tenant,
with a bearer credential this process has authenticated before (``principal_cache``) whose
role and scopes the route accepts, and query parameters the route reads. Then the request's
budgets are taken and every generation counter the cached answers depend on is read in one
Redis script (``app.api.budgets.take``, the limiter's own script and keys), and the read
runs as a prepared statement (``prepared``).

Anything else goes on to the Flask route unchanged, which stays the reference for every
other answer: a cold credential, a refused budget, a moved counter (a revocation, a role
change, a tenant suspended elsewhere), a row not found, a parameter to refuse, a Redis
outage, an exception. When the budgets were already taken, the route is handed them
(``budgets.LANE_TAKEN``) rather than taking them twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl

import orjson
from flask import Flask, g
from limits import parse
from werkzeug.wsgi import get_host

from app import clock, logs
from app.api import budgets
from app.api.lane import freshness, remembered, routes
from app.api.serialization import FastJSONProvider
from tenants.context import activate
from tenants.hosts import normalise_host

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
_PREFIX = "/api/v1/"
_BUDGETS = (("ip", "ip"), ("credential", "credential"), ("tenant", "tenant"))


class ReadLane:
    def __init__(self, app: Flask, wsgi_app: WSGIApp):
        self.app = app
        self.next = wsgi_app
        self._budget_items: tuple[object, list] | None = None
        self._metrics: dict[str, tuple] = {}
        self._adapter = None
        self._routed: dict[str, str | None] = {}  # path -> Flask's endpoint for it

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET" or not path.startswith(_PREFIX):
            return self.next(environ, start_response)
        found = routes.match(path)
        if found is None:
            return self.next(environ, start_response)
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self.next(environ, start_response)
        started = time.perf_counter()
        try:
            handled = self._answer(environ, found[0], found[1], token)
        except Exception:
            # A bug, not a client's mistake: the route answers (its 500 envelope if it fails
            # too), and the log says the lane failed first.
            log.exception("read lane failed; the Flask route answers instead")
            handled = None
        if handled is None:
            pending = environ.pop(remembered.PENDING, None)
            if pending is not None:
                return remembered.through(self.next, environ, start_response, pending)
            return self.next(environ, start_response)
        body, headers = handled
        start_response("200 OK", headers)
        self._observe(found[0].rule, time.perf_counter() - started)
        return [body]

    def _answer(self, environ: dict, route: routes.LaneRoute, path_args: dict,
                token: str) -> tuple[bytes, list] | None:
        if route.remember is None:
            query = _query(environ.get("QUERY_STRING", ""), route.query)
            if query is None:
                return None
        elif (environ.get("HTTP_IF_NONE_MATCH") or environ.get("HTTP_IF_MODIFIED_SINCE")
              or not self._routed_to(route, environ["PATH_INFO"])):
            # A conditional request, or a path Flask routes elsewhere: the route's.
            return None
        else:
            query = {}  # the route reads it; the answer is remembered per query string
        with self.app.app_context():
            from app.auth import principal_cache
            from app.auth.permissions import role_problem

            host = get_host(environ, self.app.config.get("TRUSTED_HOSTS"))
            normalised = normalise_host(host)
            resolver = self.app.extensions["albedo.tenant_resolver"]
            tenant = resolver.resolve(normalised) if normalised else None
            if tenant is None or not tenant.is_active:
                return None
            digest = principal_cache.credential_hash(token)
            cache = principal_cache.of_app()
            entry = cache.get(tenant.id, digest)
            if entry is None or (entry.valid_until is not None
                                 and entry.valid_until <= clock.now().timestamp()):
                return None
            principal = entry.value
            if any(not principal.has_scope(s) for s in route.scopes):
                return None
            with activate(tenant):
                if role_problem(principal.role, route.roles) is not None:
                    return None
                return self._read(environ, route, path_args, query, tenant, principal,
                                  entry, token, digest)

    def _read(self, environ, route, path_args, query, tenant, principal, entry, token,
              digest) -> tuple[bytes, list] | None:
        from app.auth import api_keys, principal_cache
        from app.extensions import db
        from tenants.resolution import GENERATION_KEY

        outage = budgets._outage()
        if not outage.may_ask():
            return None  # the route's in-memory fallback decides
        taken = self._budgets(environ, tenant.id, token)
        tables = (freshness.keys_for(route.tables, tenant.id) if route.remember is None
                  else remembered.counter_keys(route, tenant.id, principal.role))
        counters = [GENERATION_KEY, *entry.keys, *tables]
        try:
            windows, values = budgets.take(taken, counters)
        except Exception as exc:
            if not budgets._is_redis_error(exc):
                raise
            outage.failed()
            return None
        outage.answered()
        # From here on the budgets are taken: whatever the route answers instead of the lane
        # (a refusal, a moved counter, a row not found, an exception), it is handed them.
        environ[budgets.LANE_TAKEN] = ([key for _item, _shared, key, _cost in taken], windows,
                                       dict(zip(counters, values, strict=True)))
        resolver = self.app.extensions["albedo.tenant_resolver"]
        moved = resolver.observe_generation(int(values[0]))
        seen = tuple(values[1:1 + len(entry.keys)])
        if any(w.breached for w in windows) or moved or seen != entry.generations:
            if seen != entry.generations:
                principal_cache.of_app().forget(tenant.id, digest)
            return None
        g.request_id = logs.request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        g.log_user_id = str(principal.user_id)
        if route.remember is not None:
            return self._remembered(environ, route, tenant, principal, windows, values,
                                    len(entry.keys))
        payload = route.answer(routes.LaneRequest(
            tenant, principal, path_args, query, db.engine,
            tuple(values[1 + len(entry.keys):])))
        if payload is None:
            return None
        if principal.kind == "api_key":
            api_keys.note_use(tenant.id, principal.api_key_id)
        body = orjson.dumps(payload, default=self.app.json.default,
                            option=FastJSONProvider._OPTIONS)
        del environ[budgets.LANE_TAKEN]  # answered here
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   *budgets.window_headers(windows, time.time()),
                   ("X-Request-ID", g.request_id)]
        return body, headers

    def _remembered(self, environ, route, tenant, principal, windows, values,
                    principal_keys: int) -> tuple[bytes, list] | None:
        """The route's remembered answer, or None with the request marked to remember the
        route's answer (``remembered.through``)."""
        from app.auth import api_keys

        counters = tuple(values)  # the tenant's and caller's generations, then the tables'
        if route.tables and not freshness.has_epoch(counters[1 + principal_keys:]):
            return None
        key = remembered.key_of(route, environ, tenant.id, principal)
        found = remembered.served(self.app, key, counters)
        if found is None:
            environ[remembered.PENDING] = remembered.Pending(self.app, route, key, counters,
                                                             clock.now())
            return None
        if principal.kind == "api_key":
            api_keys.note_use(tenant.id, principal.api_key_id)
        del environ[budgets.LANE_TAKEN]  # answered here
        body, stored = found
        return body, remembered.headers_for(stored, windows, time.time(), g.request_id)

    def _routed_to(self, route: routes.LaneRoute, path: str) -> bool:
        """Whether Flask's own router sends ``path`` to the remembered route: the lane's
        patterns do not rank a static rule above a variable one as werkzeug does."""
        endpoint = self._routed.get(path, False)
        if endpoint is False:
            adapter = self._adapter
            if adapter is None:
                adapter = self._adapter = self.app.url_map.bind("localhost")
            try:
                endpoint, _args = adapter.match(path, "GET")
            except Exception:  # not found, a redirect to add a slash: the route's answer
                endpoint = None
            if len(self._routed) >= 10_000:
                self._routed.clear()
            self._routed[path] = endpoint
        return endpoint == route.endpoint

    def _budgets(self, environ: dict, tenant_id, token: str) -> list:
        """The shared budgets of an authenticated API read, as flask-limiter names and orders
        them (``app.api.limits``): IP, credential, tenant."""
        from app.api.limits import configured, limiter

        settings = self.app.extensions["albedo.settings"]
        cached = self._budget_items
        if cached is None or cached[0] is not settings:
            items = sorted(((parse(configured(name)), scope) for name, scope in _BUDGETS),
                           key=lambda pair: pair[0])
            cached = self._budget_items = (settings, items)
        values = {"ip": environ.get("REMOTE_ADDR") or "unknown",
                  "credential": hashlib.sha256(token.encode()).hexdigest()[:32],
                  "tenant": str(tenant_id)}
        prefix = limiter._key_prefix
        out = []
        for item, scope in cached[1]:
            args = [prefix, values[scope], scope] if prefix else [values[scope], scope]
            out.append((item, True, item.key_for(*args), 1))
        return out

    def _observe(self, rule: str, seconds: float) -> None:
        from app.ops import metrics

        children = self._metrics.get(rule)
        if children is None:
            labels = (rule, "GET", "2xx")
            children = self._metrics[rule] = (metrics.http_requests.labels(*labels),
                                              metrics.http_duration.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)


def _query(text: str, accepted: frozenset[str]) -> dict[str, str] | None:
    """The query's parameters when the route reads each (once, no NUL); else None."""
    if not text:
        return {}
    if not accepted:
        return None
    pairs = parse_qsl(text, keep_blank_values=True)
    query = dict(pairs)
    if len(query) != len(pairs) or not accepted.issuperset(query) or any(
            "\x00" in value for value in query.values()):
        return None
    return query
