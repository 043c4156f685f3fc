"""Signed validation answers are bound to the request they answer: the key (its hash), the
scope asked for, the nonce and the time; errors echo the nonce too. A swapped key or
fingerprint is caught by clients/python. Neutral names on reseller domains; the old path
and header still served for verifiers already shipped."""

from __future__ import annotations

import pytest

from tests.licensing_support import VALIDATE, jwks_of, load_verifier, make_license, verified


def _activate(site, key, fingerprint):
    response = site.client.post("/api/v1/machines", json={"fingerprint": fingerprint},
                                headers={"Authorization": f"License {key}"})
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.get_json()


def test_an_answer_echoes_what_was_validated_and_verifies_against_the_request(
        app, acme, globex):
    lic = make_license(app, acme, floating=True, max_machines=3)
    make_license(app, globex)
    _activate(acme, lic.key, "fp-1")
    request = {"key": lic.key.lower(), "fingerprint": "fp-1", "product": "agent-pro",
               "policy": str(lic.policy_id), "entitlements": ["chat"], "nonce": "n-1"}
    answer = verified(acme, acme.client.post(VALIDATE, json=request), request)
    assert answer["code"] == "VALID" and answer["license"]["id"] == str(lic.id)
    verifier = load_verifier()
    assert answer["scope"] == {"key_sha256": verifier.presented_key_sha256(lic.key),
                               "fingerprint": "fp-1", "product": "agent-pro",
                               "policy": str(lic.policy_id), "entitlements": ["chat"]}
    assert answer["nonce"] == "n-1" and answer["ts"]


def test_a_swapped_key_is_detected(app, acme, globex):
    """An interceptor sends another valid key of the same reseller, keeping the nonce: the
    signed VALID it gets back does not verify against the client's request."""
    mine = make_license(app, acme)
    other = make_license(app, acme)  # another valid license, same product and policy shape
    make_license(app, globex)
    jwks = jwks_of(acme)
    request = {"key": mine.key, "nonce": "n-swap"}
    swapped = acme.client.post(VALIDATE, json={**request, "key": other.key})
    assert swapped.get_json()["code"] == "VALID"
    verifier = load_verifier()
    with pytest.raises(verifier.AnswerInvalid, match="another license key"):
        verified(acme, swapped, request, jwks)
    # The unbound check alone (nonce only) would have been fooled: that is the issue.
    verifier.verify_response(method="POST", path=VALIDATE, host=acme.host,
                             headers=dict(swapped.headers), body=swapped.get_data(),
                             jwks=jwks, nonce="n-swap")
    assert verified(acme, acme.client.post(VALIDATE, json=request), request, jwks)["valid"]


def test_a_swapped_fingerprint_is_detected(app, acme, globex):
    lic = make_license(app, acme, floating=True, max_machines=2)
    make_license(app, globex)
    _activate(acme, lic.key, "fp-real")
    jwks = jwks_of(acme)
    request = {"key": lic.key, "fingerprint": "fp-cloned", "nonce": "n-fp"}
    swapped = acme.client.post(VALIDATE, json={**request, "fingerprint": "fp-real"})
    assert swapped.get_json()["code"] == "VALID"
    with pytest.raises(load_verifier().AnswerInvalid, match="another fingerprint"):
        verified(acme, swapped, request, jwks)
    honest = verified(acme, acme.client.post(VALIDATE, json=request), request, jwks)
    assert honest["code"] == "FINGERPRINT_SCOPE_MISMATCH"


def test_a_replayed_answer_and_a_missing_nonce_are_detected(app, acme, globex):
    lic = make_license(app, acme)
    make_license(app, globex)
    jwks = jwks_of(acme)
    old = acme.client.post(VALIDATE, json={"key": lic.key, "nonce": "first"})
    verifier = load_verifier()
    with pytest.raises(verifier.AnswerInvalid, match="nonce"):
        verified(acme, old, {"key": lic.key, "nonce": "second"}, jwks)
    # A request with no nonce gets "nonce": null, and a verifier holds it to that.
    bare = acme.client.post(VALIDATE, json={"key": lic.key})
    assert bare.get_json()["nonce"] is None
    verified(acme, bare, {"key": lic.key}, jwks)
    with pytest.raises(verifier.AnswerInvalid, match="nonce"):
        verified(acme, old, {"key": lic.key}, jwks)


@pytest.mark.parametrize("how, status", [
    ("get", 405),
    ("form", 415),
    ("invalid", 422),
])
def test_error_answers_are_signed_and_echo_a_readable_nonce(app, acme, globex, how, status):
    make_license(app, globex)
    jwks = jwks_of(acme)
    if how == "get":
        response = acme.client.get(f"{VALIDATE}?nonce=n-{how}")
        method = "GET"
    elif how == "form":
        response = acme.client.post(VALIDATE, data={"key": "x", "nonce": f"n-{how}"})
        method = "POST"
    else:
        response = acme.client.post(VALIDATE, json={"key": "", "nonce": f"n-{how}"})
        method = "POST"
    assert response.status_code == status
    body = response.get_json()
    assert body["error"]["code"] and body["nonce"] == f"n-{how}" and body["ts"]
    verifier = load_verifier()
    verifier.verify_response(method=method, path=VALIDATE, host=acme.host,
                             headers=dict(response.headers), body=response.get_data(),
                             jwks=jwks, request={"key": "x", "nonce": f"n-{how}"})
    with pytest.raises(verifier.AnswerInvalid, match="nonce"):
        verifier.verify_response(method=method, path=VALIDATE, host=acme.host,
                                 headers=dict(response.headers), body=response.get_data(),
                                 jwks=jwks, request={"key": "x", "nonce": "another"})


def test_a_429_echoes_the_nonce(migrated, make_tenant, owner_engine):
    from app import create_app
    from tests.conftest import _empty_tables, close_ledger, host_client

    _empty_tables(owner_engine)
    limited = create_app(migrated.with_overrides(extra={
        **migrated.extra, "ALBEDO_RATE_LIMIT_LICENSE_KEY": "1/minute"}))
    from app.extensions import db
    from app.licensing import service
    from tenants.context import activate
    from tenants.service import create_tenant, info_for

    try:
        with limited.app_context():
            from app.redis import get_redis

            get_redis().flushdb()
            infos = [info_for(create_tenant(slug, slug.title())) for slug in ("acme", "globex")]
            db.session.commit()
        keys = []
        for info in infos:
            with limited.app_context(), activate(info):
                policy = service.create_policy(service.create_product("Pro", "pro"),
                                               service.PolicyInput(name="p"))
                keys.append(service.issue_license(policy).key)
                db.session.commit()
        client = host_client(limited, infos[0].primary_host)
        jwks = client.get("/.well-known/license-keys.json").get_json()
        request = {"key": keys[0], "nonce": "n-429"}
        assert client.post(VALIDATE, json=request).status_code == 200
        refused = client.post(VALIDATE, json=request)
        assert refused.status_code == 429
        assert refused.get_json()["nonce"] == "n-429"
        verifier = load_verifier()
        answer = verifier.verify_response(
            method="POST", path=VALIDATE, host=infos[0].primary_host,
            headers=dict(refused.headers), body=refused.get_data(), jwks=jwks,
            request=request)
        assert answer["error"]["code"] == "rate_limited"
        with pytest.raises(verifier.AnswerInvalid, match="nonce"):
            verifier.verify_response(
                method="POST", path=VALIDATE, host=infos[0].primary_host,
                headers=dict(refused.headers), body=refused.get_data(), jwks=jwks,
                request={**request, "nonce": "n-other"})
        # globex's budget is its own: the same IP's first validation there passes.
        other = host_client(limited, infos[1].primary_host)
        assert other.post(VALIDATE, json={"key": keys[1]}).status_code == 200
    finally:
        close_ledger(limited)
        with limited.app_context():
            db.session.remove()
            db.engine.dispose()


def test_neutral_names_and_the_legacy_ones_still_served(app, acme, globex):
    lic = make_license(app, acme)
    make_license(app, globex)
    neutral = acme.client.get("/.well-known/license-keys.json")
    legacy = acme.client.get("/.well-known/albedo/license-keys.json")
    assert neutral.status_code == legacy.status_code == 200
    assert neutral.get_json() == legacy.get_json() and neutral.get_json()["keys"]
    assert neutral.get_json() != jwks_of(globex)  # each reseller its own keys
    response = acme.client.post(VALIDATE, json={"key": lic.key})
    assert response.headers["License-Signature"]
    # Shipped verifiers read the legacy header: the same signature under the old name.
    assert response.headers["Albedo-Signature"] == response.headers["License-Signature"]
    verifier = load_verifier()
    only_legacy = {k: v for k, v in response.headers.items() if k != "License-Signature"}
    verifier.verify_response(method="POST", path=VALIDATE, host=acme.host,
                             headers=only_legacy, body=response.get_data(),
                             jwks=legacy.get_json(), request={"key": lic.key})
    # The API docs name only the neutral ones.
    spec = acme.client.get("/api/v1/openapi.json").get_data(as_text=True)
    assert "Albedo-Signature" not in spec and "/.well-known/albedo" not in spec


def test_the_legacy_header_can_be_turned_off(migrated, app, acme, globex):
    from app import create_app
    from tests.conftest import close_ledger, host_client

    lic = make_license(app, acme)
    neutral_only = create_app(migrated.with_overrides(license_legacy_signature=False))
    try:
        response = host_client(neutral_only, acme.host).post(VALIDATE, json={"key": lic.key})
        assert "Albedo-Signature" not in response.headers
        assert response.headers["License-Signature"]
        verified(acme, response, {"key": lic.key})
    finally:
        close_ledger(neutral_only)
