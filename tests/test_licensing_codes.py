"""The validation codes embedded agents expect from Keygen: NO_MACHINES, HEARTBEAT_NOT_STARTED,
OVERDUE (with the check-in endpoint), BANNED, ENTITLEMENTS_MISSING, TOO_MANY_CORES and
POLICY_SCOPE_MISMATCH. Every answer is checked by clients/python against its request; the
look-alike tenant next door is never affected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.licensing_support import VALIDATE, make_license, verified

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def _code(site, **request) -> str:
    return verified(site, site.client.post(VALIDATE, json=request), request)["code"]


def _license_auth(key: str) -> dict:
    return {"Authorization": f"License {key}"}


def _activate(site, key, fingerprint, **extra):
    return site.client.post("/api/v1/machines", json={"fingerprint": fingerprint, **extra},
                            headers=_license_auth(key))


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


def test_no_machines_for_a_floating_license_no_machine_for_a_node_locked_one(
        app, acme, globex):
    floating = make_license(app, acme, floating=True, max_machines=5)
    locked = make_license(app, acme, code="agent-lite")
    theirs = make_license(app, globex, floating=True, max_machines=5)
    assert _code(acme, key=floating.key, fingerprint="fp") == "NO_MACHINES"
    assert _code(acme, key=locked.key, fingerprint="fp") == "NO_MACHINE"
    assert _activate(globex, theirs.key, "fp").status_code == 201
    assert _code(globex, key=theirs.key, fingerprint="fp") == "VALID"
    assert _code(acme, key=floating.key, fingerprint="fp") == "NO_MACHINES"


def test_heartbeat_not_started_until_the_first_heartbeat(app, acme, globex, at):
    at(T0)
    lic = make_license(app, acme, heartbeat_interval_seconds=600, require_heartbeat=True)
    theirs = make_license(app, globex, heartbeat_interval_seconds=600, require_heartbeat=True)
    machine = _activate(acme, lic.key, "fp-1").get_json()
    _activate(globex, theirs.key, "fp-1")
    assert _code(acme, key=lic.key, fingerprint="fp-1") == "HEARTBEAT_NOT_STARTED"
    beat = acme.client.post(f"/api/v1/machines/{machine['id']}/heartbeat",
                            headers=_license_auth(lic.key))
    assert beat.status_code == 200
    assert _code(acme, key=lic.key, fingerprint="fp-1") == "VALID"
    assert _code(globex, key=theirs.key, fingerprint="fp-1") == "HEARTBEAT_NOT_STARTED"
    at(T0 + timedelta(seconds=601))
    assert _code(acme, key=lic.key, fingerprint="fp-1") == "HEARTBEAT_DEAD"


def test_overdue_without_a_check_in_and_valid_after_one(app, acme, globex, at):
    at(T0)
    lic = make_license(app, acme, check_in_interval_seconds=3600)
    theirs = make_license(app, globex, check_in_interval_seconds=3600)
    assert _code(acme, key=lic.key) == "VALID"  # one interval from its issue
    at(T0 + timedelta(seconds=3601))
    assert _code(acme, key=lic.key) == "OVERDUE"
    checked = acme.client.post("/api/v1/licenses/check-in", headers=_license_auth(lic.key))
    assert checked.status_code == 200, checked.get_data(as_text=True)
    assert checked.get_json()["next_check_in_at"].startswith("2030-05-01T14:00:01")
    assert _code(acme, key=lic.key) == "VALID"
    assert _code(globex, key=theirs.key) == "OVERDUE"  # its own check-in is still missing
    # A key of one reseller does not check in at the other.
    assert globex.client.post("/api/v1/licenses/check-in",
                              headers=_license_auth(lic.key)).status_code == 401


def test_banned_when_the_owning_customer_is_banned(app, acme, globex, api_caller,
                                                   make_user):
    customer = make_user(acme, "buyer@example.com")
    lookalike = make_user(globex, "buyer@example.com")
    lic = make_license(app, acme, license_kwargs={"owner_id": customer})
    theirs = make_license(app, globex, license_kwargs={"owner_id": lookalike})
    reseller = api_caller(acme, role="RESELLER")
    assert _code(acme, key=lic.key) == "VALID"
    banned = acme.client.patch(f"/api/v1/users/{customer}", json={"banned": True},
                               headers=reseller.headers)
    assert banned.status_code == 200, banned.get_data(as_text=True)
    assert banned.get_json()["banned_at"]
    assert _code(acme, key=lic.key) == "BANNED"
    assert _code(globex, key=theirs.key) == "VALID"
    # Another reseller cannot ban (or even see) acme's customer.
    other = api_caller(globex, role="RESELLER")
    assert globex.client.patch(f"/api/v1/users/{customer}", json={"banned": False},
                               headers=other.headers).status_code == 404
    assert _code(acme, key=lic.key) == "BANNED"
    acme.client.patch(f"/api/v1/users/{customer}", json={"banned": False},
                      headers=reseller.headers)
    assert _code(acme, key=lic.key) == "VALID"


def test_entitlements_from_product_policy_and_license(app, acme, globex, api_caller):
    reseller = api_caller(acme, role="RESELLER")
    lic = make_license(app, acme, entitlements=["export"],
                       license_kwargs={"entitlements": ["sso"]})
    theirs = make_license(app, globex, entitlements=["export", "sso", "audit"])
    # "chat" comes from the product (tests/licensing_support), "export" from the policy,
    # "sso" from the license itself.
    assert _code(acme, key=lic.key, entitlements=["chat", "export", "sso"]) == "VALID"
    assert _code(acme, key=lic.key, entitlements=["audit"]) == "ENTITLEMENTS_MISSING"
    assert _code(globex, key=theirs.key, entitlements=["audit"]) == "VALID"
    answer = acme.client.post(VALIDATE, json={"key": lic.key}).get_json()
    assert answer["license"]["entitlements"] == ["chat", "export", "sso"]
    shown = acme.client.get(f"/api/v1/licenses/{lic.id}", headers=reseller.headers)
    assert shown.get_json()["entitlements"] == ["sso"]


def test_too_many_cores(app, acme, globex):
    lic = make_license(app, acme, floating=True, max_machines=3, max_cores=8)
    theirs = make_license(app, globex, floating=True, max_machines=3, max_cores=8)
    assert _activate(acme, lic.key, "fp-1", cores=4).status_code == 201
    assert _activate(acme, lic.key, "fp-2", cores=4).status_code == 201
    refused = _activate(acme, lic.key, "fp-3", cores=1)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "too_many_cores"
    assert _code(acme, key=lic.key, fingerprint="fp-1") == "VALID"
    _policy(app, acme, lic.policy_id, max_cores=6)  # the reseller lowers the limit
    assert _code(acme, key=lic.key, fingerprint="fp-1") == "TOO_MANY_CORES"
    assert _activate(globex, theirs.key, "fp-1", cores=8).status_code == 201
    assert _code(globex, key=theirs.key, fingerprint="fp-1") == "VALID"
    bad = _activate(acme, lic.key, "fp-4", cores=0)
    assert bad.status_code == 422


def test_policy_scope(app, acme, globex):
    lic = make_license(app, acme)
    other = make_license(app, acme)
    theirs = make_license(app, globex)
    assert _code(acme, key=lic.key, policy=str(lic.policy_id)) == "VALID"
    assert _code(acme, key=lic.key, policy=str(other.policy_id)) == "POLICY_SCOPE_MISMATCH"
    assert _code(globex, key=theirs.key, policy=str(lic.policy_id)) == "POLICY_SCOPE_MISMATCH"
