"""license.expired (periodic scan), license.validation_failed (batched), the audit trail of
license actions, and signed answers for every response on the validation path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.licensing_support import (
    VALIDATE,
    jwks_of,
    load_verifier,
    make_license,
    settle,
    validate,
)

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def _events(app, site, kind: str) -> list[dict]:
    from app.extensions import db
    from app.integrations.models import WebhookEvent
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        rows = db.session.scalars(select(WebhookEvent).where(WebhookEvent.type == kind)
                                  .order_by(WebhookEvent.created_at, WebhookEvent.id))
        return [dict(row.data) for row in rows]


def _scan(app, now: datetime) -> int:
    from app.licensing.expiry import announce_expiries

    with app.app_context():
        return announce_expiries(now)


def _license_call(app, site, license_id, fn):
    from app.extensions import db
    from app.licensing import service
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        result = fn(service, service.get_license(license_id))
        db.session.commit()
        return result


def test_an_expiry_is_announced_once_in_its_own_tenant(app, acme, globex, at):
    at(T0)
    soon = make_license(app, acme, duration_days=10)
    later = make_license(app, acme, duration_days=40)
    perpetual = make_license(app, acme)  # no duration: never expires
    revoked = make_license(app, acme, duration_days=10)
    other = make_license(app, globex, duration_days=10)
    _license_call(app, acme, revoked.id, lambda s, x: s.revoke(x))

    assert _scan(app, T0 + timedelta(days=9)) == 0
    assert _scan(app, T0 + timedelta(days=11)) == 2  # acme's `soon` and globex's license
    assert _scan(app, T0 + timedelta(days=12)) == 0  # announced once, not per scan

    acme_expired = _events(app, acme, "license.expired")
    assert [e["license_id"] for e in acme_expired] == [str(soon.id)]
    assert acme_expired[0]["status"] == "expired" and acme_expired[0]["expired_at"]
    assert [e["license_id"] for e in _events(app, globex, "license.expired")] == [str(other.id)]
    assert str(later.id) not in {e["license_id"] for e in acme_expired}
    assert str(perpetual.id) not in {e["license_id"] for e in acme_expired}

    # Renewing announces the new expiry when it comes, once again.
    _license_call(app, acme, soon.id, lambda s, x: s.renew(x))
    at(T0 + timedelta(days=12))
    assert _scan(app, T0 + timedelta(days=13)) == 0
    assert _scan(app, T0 + timedelta(days=60)) == 2  # `soon` renewed (days 22) and `later`
    ids = [e["license_id"] for e in _events(app, acme, "license.expired")]
    assert sorted(ids) == sorted([str(soon.id), str(soon.id), str(later.id)])


def test_the_expiry_scan_is_a_periodic_worker_task(app, acme, at):
    from jobs.periodic import PERIODIC
    from jobs.worker import run_worker

    assert "licensing.announce_expiries" in {p.task for p in PERIODIC}
    at(T0)
    lic = make_license(app, acme, duration_days=1)
    at(T0 + timedelta(days=2))
    from jobs.enqueue import enqueue

    with app.app_context():
        enqueue("licensing.announce_expiries", tenant_id=None)
    run_worker(app, ["default"], burst=True, simple=True)
    assert [e["license_id"] for e in _events(app, acme, "license.expired")] == [str(lic.id)]


def test_refused_validations_become_one_event_per_license_and_code_per_batch(
        app, acme, globex):
    from jobs.enqueue import enqueue
    from jobs.worker import run_worker

    refused = make_license(app, acme, fingerprint_required=True)
    fine = make_license(app, acme)
    theirs = make_license(app, globex)
    _license_call(app, globex, theirs.id, lambda s, x: s.suspend(x))
    for _ in range(3):
        assert validate(acme, refused.key)["code"] == "FINGERPRINT_SCOPE_REQUIRED"
    assert validate(acme, refused.key, fingerprint="fp-1")["code"] == "NO_MACHINE"
    assert validate(acme, refused.key, fingerprint="fp-2")["code"] == "NO_MACHINE"
    assert validate(acme, fine.key)["code"] == "VALID"
    assert validate(acme, "junk")["code"] == "MALFORMED"
    assert validate(globex, theirs.key)["code"] == "SUSPENDED"
    settle(app)
    with app.app_context():
        enqueue("licensing.flush_validations", tenant_id=acme.info.id)
        enqueue("licensing.flush_validations", tenant_id=globex.info.id)
    run_worker(app, ["default"], burst=True, simple=True)

    acme_events = sorted(_events(app, acme, "license.validation_failed"),
                         key=lambda e: e["code"])
    assert [(e["license_id"], e["code"], e["reason"], e["count"], e["fingerprint"])
            for e in acme_events] == [
        (str(refused.id), "FINGERPRINT_SCOPE_REQUIRED", "fingerprint_scope_required", 3, None),
        (str(refused.id), "NO_MACHINE", "no_machine", 2, "fp-2")]
    assert all(e["first_at"] <= e["last_at"] for e in acme_events)
    globex_events = _events(app, globex, "license.validation_failed")
    assert [(e["license_id"], e["reason"], e["count"]) for e in globex_events] == [
        (str(theirs.id), "suspended", 1)]

    # A second flush with nothing new emits nothing again.
    with app.app_context():
        enqueue("licensing.flush_validations", tenant_id=acme.info.id)
    run_worker(app, ["default"], burst=True, simple=True)
    assert len(_events(app, acme, "license.validation_failed")) == 2


def _audit_actions(app, site) -> list[tuple[str, str | None, object]]:
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        rows = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action.like("license%") | AuditEvent.action.like("signing_key%"))
            .order_by(AuditEvent.created_at, AuditEvent.id))
        return [(r.action, r.target_id, r.actor_user_id) for r in rows]


def test_license_actions_are_audited_with_their_actor(app, acme, globex, api_caller):
    from app.extensions import db
    from app.licensing import signing
    from tenants.context import activate

    seller = api_caller(acme, role="RESELLER")
    lic = make_license(app, acme, duration_days=30)
    make_license(app, globex, duration_days=30)
    base = f"/api/v1/licenses/{lic.id}"
    for action in ("suspend", "reinstate", "renew", "revoke"):
        response = acme.client.post(f"{base}/{action}", headers=seller.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
    issued = acme.client.post("/api/v1/licenses", headers=seller.headers,
                              json={"policy_id": str(lic.policy_id), "name": "api"})
    assert issued.status_code == 201
    with app.app_context(), activate(acme.info):
        signing.rotate()
        db.session.commit()

    actions = _audit_actions(app, acme)
    by_api = [(a, t) for a, t, actor in actions if actor == seller.user_id]
    assert by_api == [("license_suspended", str(lic.id)), ("license_reinstated", str(lic.id)),
                      ("license_renewed", str(lic.id)), ("license_revoked", str(lic.id)),
                      ("license_issued", issued.get_json()["id"])]
    assert ("signing_key_rotated", None) in [(a, actor) for a, _, actor in actions]
    # globex's trail has its own license's issue only: nothing of acme's.
    assert [a for a, _, _ in _audit_actions(app, globex)] == ["license_issued"]
    log = acme.client.get("/api/v1/audit-events?limit=100", headers=seller.headers).get_json()
    assert {"license_suspended", "license_revoked"} <= {e["action"] for e in log["items"]}
    theirs = globex.client.get("/api/v1/audit-events?limit=100",
                               headers=api_caller(globex, role="RESELLER").headers).get_json()
    assert str(lic.id) not in {e["target_id"] for e in theirs["items"]}


def test_every_answer_on_the_validation_path_is_signed(app, acme, globex, at):
    verifier = load_verifier()
    now = at(T0)
    make_license(app, acme)
    jwks = jwks_of(acme)

    def verified(response, method):
        return verifier.verify_response(method=method, path=VALIDATE, host=acme.host,
                                        headers=dict(response.headers),
                                        body=response.get_data(), jwks=jwks, now=now)

    wrong_method = acme.client.get(VALIDATE)
    assert wrong_method.status_code == 405
    assert verified(wrong_method, "GET")["error"]["code"] == "method_not_allowed"
    not_json = acme.client.post(VALIDATE, data="key=x",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 415
    assert verified(not_json, "POST")["error"]["code"] == "unsupported_media_type"
    # Signed with acme's key, so globex's keys reject it; other API paths stay unsigned.
    with pytest.raises(verifier.AnswerInvalid):
        verifier.verify_response(method="GET", path=VALIDATE, host=acme.host,
                                 headers=dict(wrong_method.headers),
                                 body=wrong_method.get_data(), jwks=jwks_of(globex), now=now)
    assert "Albedo-Signature" not in acme.client.get("/api/v1/licenses").headers
