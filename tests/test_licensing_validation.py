"""POST /api/v1/licenses/validate: every code, their precedence, signed answers, isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.licensing_support import (
    VALIDATE,
    flip_char,
    jwks_of,
    load_verifier,
    make_license,
    settle,
    validate,
)

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def _act(app, site, license_id, fn):
    from app.extensions import db
    from app.licensing import service
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        result = fn(service, service.get_license(license_id))
        db.session.commit()
        return result


def _policy(app, site, policy_id, **changes):
    from app.extensions import db
    from app.licensing import service
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        policy = service.get_policy(policy_id)
        data = service.PolicyInput(**{f: getattr(policy, f) for f in
                                      service.PolicyInput.__dataclass_fields__})
        for name, value in changes.items():
            setattr(data, name, value)
        service.update_policy(policy, data)
        db.session.commit()


def _activate(site, key, fingerprint):
    response = site.client.post("/api/v1/machines", json={"fingerprint": fingerprint},
                                headers={"Authorization": f"License {key}"})
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.get_json()


def test_codes_follow_the_documented_precedence(app, acme, globex, at):
    """One license that breaks every rule, repaired one rule at a time: each step shows the
    next code in the precedence list, so swapping any two rules fails this test."""
    from app.licensing import counters

    at(T0)
    lic = make_license(app, acme, duration_days=30, floating=True, max_machines=2,
                       heartbeat_interval_seconds=600, fingerprint_required=True,
                       max_executions_per_period=1, execution_period_seconds=86400)
    make_license(app, globex, duration_days=30)  # look-alike data next door
    expired = at(T0 + timedelta(days=31))
    _act(app, acme, lic.id, lambda s, x: s.suspend(x))
    assert validate(acme, lic.key, product="other")["code"] == "SUSPENDED"
    _act(app, acme, lic.id, lambda s, x: s.reinstate(x))
    assert validate(acme, lic.key, product="other")["code"] == "EXPIRED"
    _act(app, acme, lic.id, lambda s, x: s.extend(x, T0 + timedelta(days=90)))
    assert validate(acme, lic.key, product="other")["code"] == "PRODUCT_SCOPE_MISMATCH"
    assert validate(acme, lic.key, product="agent-pro")["code"] == "FINGERPRINT_SCOPE_REQUIRED"
    assert validate(acme, lic.key, fingerprint="fp-x")["code"] == "NO_MACHINES"
    _activate(acme, lic.key, "fp-1")
    at(expired + timedelta(seconds=300))
    _activate(acme, lic.key, "fp-2")
    _policy(app, acme, lic.policy_id, max_machines=1, floating=False)  # limit lowered
    assert validate(acme, lic.key, fingerprint="fp-x")["code"] == "TOO_MANY_MACHINES"
    _policy(app, acme, lic.policy_id, max_machines=2, floating=True)
    assert validate(acme, lic.key, fingerprint="fp-x")["code"] == "FINGERPRINT_SCOPE_MISMATCH"
    now = at(expired + timedelta(seconds=700))  # fp-1's heartbeat is now overdue
    assert validate(acme, lic.key, fingerprint="fp-1")["code"] == "HEARTBEAT_DEAD"
    with app.app_context():
        counters.record_execution(lic.id, 86400, now)
    answer = validate(acme, lic.key, fingerprint="fp-2")
    assert answer["code"] == "USAGE_EXCEEDED" and answer["flags"]["executions_used"] == 1
    at(now + timedelta(days=1))  # a new period; fp-2 heartbeats first
    beat = acme.client.post(f"/api/v1/machines/{_activate(acme, lic.key, 'fp-2')['id']}"
                            "/heartbeat", headers={"Authorization": f"License {lic.key}"})
    assert beat.status_code == 200
    answer = validate(acme, lic.key, fingerprint="fp-2", product="agent-pro")
    assert (answer["valid"], answer["code"]) == (True, "VALID")
    assert answer["license"]["id"] == str(lic.id)


def test_revoked_wins_over_expired_and_is_final(app, acme, at):
    at(T0)
    lic = make_license(app, acme, duration_days=1)
    at(T0 + timedelta(days=5))
    _act(app, acme, lic.id, lambda s, x: s.revoke(x))
    assert validate(acme, lic.key)["code"] == "REVOKED"
    from app.errors import ApiError

    with pytest.raises(ApiError):
        _act(app, acme, lic.id, lambda s, x: s.reinstate(x))
    assert validate(acme, lic.key)["code"] == "REVOKED"


def test_malformed_bad_signature_and_unknown_license(app, acme, globex):
    from app.licensing import keyformat, signing
    from tenants.context import activate

    lic = make_license(app, acme)
    assert validate(acme, "not a key")["code"] == "MALFORMED"
    assert validate(acme, lic.key[:-2])["code"] == "MALFORMED"
    assert validate(acme, flip_char(lic.key, len(lic.key) - 10))["code"] == "BAD_SIGNATURE"
    assert validate(acme, flip_char(lic.key, 30))["code"] == "BAD_SIGNATURE"
    # A genuine signature over a license id that does not exist here.
    with app.app_context(), activate(acme.info):
        key = signing.signer()
        payload = keyformat.KeyPayload(1, key.kid, uuid.uuid4(), None)
        forged = signing.sign_license_key("ACME", payload, key)
    answer = validate(acme, forged)
    assert (answer["code"], answer["license"]) == ("NOT_FOUND", None)


def test_a_key_of_one_reseller_is_not_found_on_another(app, acme, globex):
    from app.licensing import keyformat, signing
    from tenants.context import activate

    a = make_license(app, acme)
    g = make_license(app, globex)  # same product code, same policy: look-alike
    answer = validate(globex, a.key, nonce="n1")
    assert (answer["valid"], answer["code"], answer["license"]) == (False, "NOT_FOUND", None)
    assert validate(acme, g.key)["code"] == "NOT_FOUND"
    # Even signed with globex's own key, acme's license id does not exist on globex.
    with app.app_context(), activate(globex.info):
        key = signing.signer()
        forged = signing.sign_license_key(
            "GLOBEX", keyformat.KeyPayload(1, key.kid, a.id, None), key)
    assert validate(globex, forged)["code"] == "NOT_FOUND"
    assert validate(acme, a.key)["code"] == "VALID"
    assert validate(globex, g.key)["code"] == "VALID"


def test_expiry_and_grace_under_a_controlled_clock(app, acme, globex, at):
    at(T0)
    strict = make_license(app, acme, duration_days=10, grace_period_seconds=3600)
    lenient = make_license(app, acme, code="agent-lite", duration_days=10,
                           expiry_strategy="allow")
    other = make_license(app, globex, duration_days=100)
    expiry = T0 + timedelta(days=10)
    at(expiry)
    assert validate(acme, strict.key)["flags"] == {}
    at(expiry + timedelta(minutes=30))
    answer = validate(acme, strict.key)
    assert (answer["code"], answer["flags"]) == ("VALID", {"in_grace_period": True})
    at(expiry + timedelta(seconds=3601))
    assert validate(acme, strict.key)["code"] == "EXPIRED"
    answer = validate(acme, lenient.key)
    assert (answer["valid"], answer["flags"]) == (True, {"expired": True})
    assert validate(globex, other.key)["code"] == "VALID"
    # Renewal moves the expiry by the policy's duration from now.
    _act(app, acme, strict.id, lambda s, x: s.renew(x))
    assert validate(acme, strict.key)["code"] == "VALID"


def test_answers_are_signed_and_verify_with_the_public_jwk_alone(app, acme, globex, at):
    verifier = load_verifier()
    now = at(T0)
    lic = make_license(app, acme)
    make_license(app, globex)
    jwks = jwks_of(acme)
    response = acme.client.post(VALIDATE, json={"key": lic.key, "nonce": "abc123"})
    answer = verifier.verify_response(method="POST", path=VALIDATE, host=acme.host,
                                      headers=dict(response.headers),
                                      body=response.get_data(), jwks=jwks, nonce="abc123",
                                      now=now)
    assert answer["nonce"] == "abc123" and answer["code"] == "VALID"
    assert answer["ts"] == now.isoformat()
    assert 'algorithm="ed25519"' in response.headers["Albedo-Signature"]
    assert response.headers["Digest"].startswith("SHA-256=")

    def check(resp, **overrides):
        kwargs = {"method": "POST", "path": VALIDATE, "host": acme.host,
                  "headers": dict(resp.headers), "body": resp.get_data(), "jwks": jwks,
                  "nonce": "abc123", "now": now, **overrides}
        return verifier.verify_response(**kwargs)

    body = bytearray(response.get_data())
    body[body.index(b"VALID")] ^= 0x01  # one flipped byte in the answer
    with pytest.raises(verifier.AnswerInvalid):
        check(response, body=bytes(body))
    with pytest.raises(verifier.AnswerInvalid, match="nonce"):
        check(response, nonce="another")
    with pytest.raises(verifier.AnswerInvalid, match="five minutes"):
        check(response, now=now + timedelta(minutes=6))
    with pytest.raises(verifier.AnswerInvalid):
        check(response, host=globex.host)  # an answer of another domain
    with pytest.raises(verifier.AnswerInvalid):
        check(response, jwks=jwks_of(globex))  # another reseller's keys
    headers = dict(response.headers)
    headers["Date"] = "Fri, 01 Mar 2030 12:00:01 GMT"
    with pytest.raises(verifier.AnswerInvalid):
        check(response, headers=headers)

    # Errors are signed too: a malformed request and a rejected key.
    bad = acme.client.post(VALIDATE, json={"nonce": "abc123"})
    assert bad.status_code == 422
    assert check(bad, nonce=None)["error"]["code"] == "validation_failed"
    wrong = acme.client.post(VALIDATE, json={"key": "x", "nonce": "abc123"})
    assert check(wrong)["code"] == "MALFORMED"


def test_validations_are_counted_off_the_hot_path(app, acme, globex, redis_client):
    from app.extensions import db
    from app.licensing.models import License, ValidationRecord
    from jobs.enqueue import enqueue
    from jobs.worker import run_worker
    from tenants.context import activate

    a = make_license(app, acme)
    g = make_license(app, globex)
    for _ in range(3):
        validate(acme, a.key, fingerprint="fp-a")
    validate(acme, "junk")
    validate(globex, g.key)

    def counts(site, license_id):
        with app.app_context(), activate(site.info):
            row = db.session.get(License, license_id)
            logged = db.session.scalar(select(func.count()).select_from(ValidationRecord))
            return row.validation_count, row.last_validated_at, logged

    assert counts(acme, a.id) == (0, None, 0)  # nothing written by the requests themselves
    with app.app_context():
        jobs = [j for j in redis_client.zrange("rq:scheduled:test-default", 0, -1)]
    assert jobs, "the first validation schedules a flush"
    settle(app)
    with app.app_context():
        enqueue("licensing.flush_validations", tenant_id=acme.info.id)
        enqueue("licensing.flush_validations", tenant_id=globex.info.id)
    run_worker(app, ["default"], burst=True, simple=True)
    count, last, logged = counts(acme, a.id)
    assert (count, logged) == (3, 4) and last is not None
    assert counts(globex, g.id)[::2] == (1, 1)
    with app.app_context(), activate(acme.info):
        records = sorted((r.code, r.fingerprint, r.license_id)
                         for r in db.session.scalars(select(ValidationRecord)))
        assert records == [("MALFORMED", None, None)] + [("NO_MACHINE", "fp-a", a.id)] * 3
    # A second flush with nothing new changes nothing (idempotent drain).
    with app.app_context():
        enqueue("licensing.flush_validations", tenant_id=acme.info.id)
    run_worker(app, ["default"], burst=True, simple=True)
    assert counts(acme, a.id)[::2] == (3, 4)


def test_validation_is_rate_limited_per_key_and_per_ip_and_429s_are_signed(
        migrated, make_tenant, owner_engine):
    from app import create_app
    from tests.conftest import _empty_tables, close_ledger, host_client

    _empty_tables(owner_engine)
    # Budgets per hour: a minute's window could roll over during a slow run (its count then
    # decays with the sliding window's weighting), which is not what this test is about.
    app = create_app(migrated.with_overrides(extra={
        **migrated.extra, "ALBEDO_RATE_LIMIT_LICENSE_KEY": "3/hour",
        "ALBEDO_RATE_LIMIT_LICENSE_IP": "5/hour"}))
    with app.app_context():
        from app.redis import get_redis

        get_redis().flushdb()
    from app.extensions import db
    from app.licensing import service
    from tenants.context import activate
    from tenants.service import create_tenant, info_for

    with app.app_context():
        info = info_for(create_tenant("acme", "Acme"))
        db.session.commit()
    with app.app_context(), activate(info):
        product = service.create_product("Pro", "pro")
        policy = service.create_policy(product, service.PolicyInput(name="p"))
        keys = [service.issue_license(policy).key for _ in range(3)]
        db.session.commit()
    client = host_client(app, info.primary_host)
    codes = [client.post(VALIDATE, json={"key": keys[0]}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # per key
    # The refused request did not use the IP's budget: two more pass, then a fresh key is
    # refused because the IP has used its five.
    assert [client.post(VALIDATE, json={"key": keys[1]}).status_code for _ in range(2)] == [
        200, 200]
    limited = client.post(VALIDATE, json={"key": keys[2]})
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    jwks = client.get("/.well-known/albedo/license-keys.json").get_json()
    verifier = load_verifier()
    verifier.verify_response(method="POST", path=VALIDATE, host=info.primary_host,
                             headers=dict(limited.headers), body=limited.get_data(),
                             jwks=jwks)
    close_ledger(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
