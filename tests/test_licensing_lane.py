"""The validation lane answers well-formed validations without Flask's request pipeline, with
exactly what the Flask route would answer, and hands everything else to the route."""

from __future__ import annotations

import json

import pytest
from flask import Flask, request_started
from werkzeug.test import Client
from werkzeug.wrappers import Response

from tests.licensing_support import VALIDATE, flip_char, jwks_of, load_verifier, make_license


def _route_only(app) -> Client:
    """The Flask route alone, the lane bypassed: the reference the lane must match."""
    return Client(lambda environ, start: Flask.wsgi_app(app, environ, start), Response)


@pytest.fixture
def pipeline_runs(app) -> list[str]:
    """Paths that went through Flask's request pipeline."""
    seen: list[str] = []

    def note(sender, **extra):
        from flask import request

        seen.append(request.path)

    request_started.connect(note, app)
    yield seen
    request_started.disconnect(note, app)


def test_the_lane_answers_as_the_route_does(app, acme, globex, pipeline_runs):
    lic = make_license(app, acme, fingerprint_required=True)
    theirs = make_license(app, globex)
    bodies = [
        {"key": lic.key, "fingerprint": "fp-1", "product": "agent-pro", "nonce": "n-1"},
        {"key": lic.key.lower(), "fingerprint": "fp-1", "policy": str(lic.policy_id),
         "entitlements": ["chat", "sso"], "nonce": "n-2"},  # ENTITLEMENTS_MISSING, bound
        {"key": lic.key},  # FINGERPRINT_SCOPE_REQUIRED
        {"key": theirs.key, "nonce": "x"},  # another reseller's key: NOT_FOUND
        {"key": flip_char(lic.key, 12)},  # BAD_SIGNATURE or MALFORMED
        {"key": "junk", "fingerprint": None, "product": None, "nonce": None},
    ]
    route = _route_only(app)
    jwks = jwks_of(acme)
    verifier = load_verifier()
    for body in bodies:
        headers = {"Host": acme.host, "X-Request-ID": "req-42"}
        lane = acme.client.post(VALIDATE, json=body, headers=headers)
        reference = route.post(VALIDATE, json=body, headers=headers)
        assert lane.status_code == reference.status_code == 200
        ours, theirs_ = lane.get_json(), json.loads(reference.get_data())
        assert {k: v for k, v in ours.items() if k != "ts"} == {
            k: v for k, v in theirs_.items() if k != "ts"}, body
        # The route's session machinery adds "Vary: Cookie"; no answer depends on cookies.
        assert sorted(lane.headers.keys()) == sorted(
            k for k, _ in reference.headers.items() if k != "Vary")
        assert lane.headers["Content-Type"] == reference.headers["Content-Type"]
        assert lane.headers["X-Request-ID"] == "req-42"
        for answer in (lane, reference):
            verifier.verify_response(method="POST", path=VALIDATE, host=acme.host,
                                     headers=dict(answer.headers), body=answer.get_data(),
                                     jwks=jwks, request=body)
    # Only the reference requests (and the JWKS fetch) went through the Flask pipeline.
    assert pipeline_runs.count(VALIDATE) == len(bodies)


@pytest.mark.parametrize("kwargs, status", [
    ({"data": "{not json", "content_type": "application/json"}, 400),
    ({"json": {"key": ""}}, 422),
    ({"json": {"key": "x", "extra": 1}}, 422),
    ({"json": {"key": "x" * 300}}, 422),
    ({"json": ["not", "an", "object"]}, 422),
    ({"data": "key=x", "content_type": "application/x-www-form-urlencoded"}, 415),
])
def test_what_the_lane_does_not_take_the_route_answers(app, acme, globex, pipeline_runs,
                                                       kwargs, status):
    response = acme.client.post(VALIDATE, **kwargs)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert "License-Signature" in response.headers  # errors are signed too
    assert pipeline_runs == [VALIDATE]


def test_a_well_formed_validation_skips_the_flask_pipeline(app, acme, globex, pipeline_runs):
    lic = make_license(app, acme)
    response = acme.client.post(VALIDATE, json={"key": lic.key})
    assert response.status_code == 200 and response.get_json()["code"] == "VALID"
    other = globex.client.post(VALIDATE, json={"key": lic.key})
    assert other.get_json()["code"] == "NOT_FOUND"
    assert pipeline_runs == []
    # Other methods and paths are the route's.
    assert acme.client.get(VALIDATE).status_code == 405
    unknown = acme.client.post(VALIDATE, json={"key": lic.key}, headers={"Host": "nope.example"})
    assert unknown.status_code == 404
    assert pipeline_runs == [VALIDATE, VALIDATE]


def test_the_lane_sees_the_client_address_behind_a_proxy(migrated, app, acme, globex):
    from app import create_app
    from tests.conftest import close_ledger, host_client

    proxied = create_app(migrated.with_overrides(proxy_count=1, extra={
        **migrated.extra, "ALBEDO_RATE_LIMIT_LICENSE_IP": "1/minute"}))
    lic = make_license(app, acme)
    client = host_client(proxied, acme.host)
    try:
        def status(forwarded_for: str) -> int:
            return client.post(VALIDATE, json={"key": lic.key},
                               headers={"X-Forwarded-For": forwarded_for}).status_code

        # One validation per client address: the proxy's own address is not the budget's.
        assert [status("203.0.113.7"), status("198.51.100.9"), status("203.0.113.7")] == [
            200, 200, 429]
    finally:
        close_ledger(proxied)
