"""Machines: license-key auth, seats, heartbeats, isolation, and the seat lock under load."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app import clock
from tests.conftest import POSTGRES
from tests.licensing_support import make_license, validate

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"License {key}"}


def _activate(site, key, fingerprint, **extra):
    return site.client.post("/api/v1/machines", json={"fingerprint": fingerprint, **extra},
                            headers=_auth(key))


def test_activation_needs_a_valid_license_key(app, acme, globex):
    a = make_license(app, acme)
    assert _activate(acme, "", "fp").status_code == 401
    response = acme.client.post("/api/v1/machines", json={"fingerprint": "fp"},
                                headers={"Authorization": "Bearer whatever"})
    assert response.get_json()["error"]["code"] == "unauthenticated"
    wrong = _activate(globex, a.key, "fp")  # acme's key on globex's domain
    assert wrong.status_code == 401
    assert wrong.get_json()["error"]["details"] == {"code": "NOT_FOUND"}
    missing = acme.client.post("/api/v1/machines", json={}, headers=_auth(a.key))
    assert missing.status_code == 422


def test_seats_are_limited_and_activation_is_idempotent(app, acme, globex):
    a = make_license(app, acme, floating=True, max_machines=2)
    g = make_license(app, globex, floating=True, max_machines=2)
    first = _activate(acme, a.key, "fp-1", name="laptop")
    assert first.status_code == 201
    body = first.get_json()
    assert (body["fingerprint"], body["name"], body["license_id"]) == ("fp-1", "laptop",
                                                                       str(a.id))
    again = _activate(acme, a.key, "fp-1")
    assert (again.status_code, again.get_json()["id"]) == (200, body["id"])
    assert _activate(acme, a.key, "fp-2").status_code == 201
    full = _activate(acme, a.key, "fp-3")
    assert full.status_code == 409
    assert full.get_json()["error"]["code"] == "too_many_machines"
    # globex's seats are its own: the same fingerprints activate there.
    for fp in ("fp-1", "fp-2"):
        assert _activate(globex, g.key, fp).status_code == 201
    assert validate(acme, a.key, fingerprint="fp-2")["code"] == "VALID"
    assert validate(acme, a.key, fingerprint="fp-3")["code"] == "FINGERPRINT_SCOPE_MISMATCH"


def test_node_locked_license_holds_one_machine(app, acme):
    a = make_license(app, acme)  # node-locked by default
    assert _activate(acme, a.key, "only").status_code == 201
    assert _activate(acme, a.key, "second").status_code == 409


def test_deactivation_frees_the_seat_and_only_for_the_owning_license(app, acme, globex):
    a = make_license(app, acme)
    other = make_license(app, acme, code="agent-lite")
    g = make_license(app, globex)
    machine = _activate(acme, a.key, "fp-1").get_json()
    # Another license of the same tenant, or another tenant's key, cannot touch it.
    assert acme.client.delete(f"/api/v1/machines/{machine['id']}",
                              headers=_auth(other.key)).status_code == 404
    assert globex.client.delete(f"/api/v1/machines/{machine['id']}",
                                headers=_auth(g.key)).status_code == 404
    assert _activate(acme, a.key, "fp-2").status_code == 409
    assert acme.client.delete(f"/api/v1/machines/{machine['id']}",
                              headers=_auth(a.key)).status_code == 204
    assert _activate(acme, a.key, "fp-2").status_code == 201


def test_a_dead_heartbeat_frees_the_seat(app, acme, globex):
    clock.set_clock(lambda: T0)
    a = make_license(app, acme, heartbeat_interval_seconds=60)
    g = make_license(app, globex, heartbeat_interval_seconds=60)
    machine = _activate(acme, a.key, "fp-1").get_json()
    _activate(globex, g.key, "fp-1")
    assert machine["heartbeat_due_at"].startswith("2030-03-01T12:01:00")
    clock.set_clock(lambda: T0 + timedelta(seconds=50))
    beat = acme.client.post(f"/api/v1/machines/{machine['id']}/heartbeat", headers=_auth(a.key))
    assert beat.status_code == 200
    assert _activate(acme, a.key, "fp-2").status_code == 409  # still alive: seat held
    clock.set_clock(lambda: T0 + timedelta(seconds=111))  # 61 s since the last beat
    assert validate(acme, a.key, fingerprint="fp-1")["code"] == "HEARTBEAT_DEAD"
    late = acme.client.post(f"/api/v1/machines/{machine['id']}/heartbeat", headers=_auth(a.key))
    assert (late.status_code, late.get_json()["error"]["code"]) == (409, "heartbeat_dead")
    assert _activate(acme, a.key, "fp-2").status_code == 201  # the dead one's seat
    assert validate(acme, a.key, fingerprint="fp-2")["code"] == "VALID"
    assert validate(acme, a.key, fingerprint="fp-1")["code"] == "FINGERPRINT_SCOPE_MISMATCH"
    # globex's machine was not reaped by acme's activity.
    from app.extensions import db
    from app.licensing.models import Machine
    from tenants.context import activate

    with app.app_context(), activate(globex.info):
        assert db.session.scalar(select(func.count()).select_from(Machine)) == 1


def test_suspended_or_expired_licenses_cannot_activate(app, acme):
    from app.extensions import db
    from app.licensing import service
    from tenants.context import activate

    clock.set_clock(lambda: T0)
    a = make_license(app, acme, duration_days=1)
    b = make_license(app, acme, code="agent-lite")
    with app.app_context(), activate(acme.info):
        service.suspend(service.get_license(b.id))
        db.session.commit()
    clock.set_clock(lambda: T0 + timedelta(days=2))
    expired = _activate(acme, a.key, "fp")
    assert (expired.status_code, expired.get_json()["error"]["code"]) == (403, "license_expired")
    suspended = _activate(acme, b.key, "fp")
    assert (suspended.status_code, suspended.get_json()["error"]["code"]) == (
        403, "license_suspended")


def test_executions_count_toward_the_period_limit(app, acme):
    clock.set_clock(lambda: T0)
    a = make_license(app, acme, max_executions_per_period=3, execution_period_seconds=3600)
    response = acme.client.post("/api/v1/licenses/executions", json={"count": 2},
                                headers=_auth(a.key))
    assert response.get_json() == {"used": 2, "limit": 3, "period_seconds": 3600}
    assert validate(acme, a.key)["code"] == "VALID"
    acme.client.post("/api/v1/licenses/executions", json={}, headers=_auth(a.key))
    assert validate(acme, a.key)["code"] == "USAGE_EXCEEDED"
    clock.set_clock(lambda: T0 + timedelta(hours=1))
    assert validate(acme, a.key)["code"] == "VALID"


@pytest.mark.skipif(not POSTGRES, reason="the row lock (SELECT … FOR UPDATE) is PostgreSQL's")
def test_fifty_parallel_activations_never_exceed_five_seats(app, acme, globex):
    from app.extensions import db
    from app.licensing.models import Machine
    from tenants.context import activate
    from tests.conftest import host_client

    a = make_license(app, acme, floating=True, max_machines=5)
    make_license(app, globex, floating=True, max_machines=5)
    start = threading.Barrier(50)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        client = host_client(app, acme.host)
        start.wait(timeout=30)
        status = _activate(type("S", (), {"client": client})(), a.key, f"fp-{n}").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [201] * 5 + [409] * 45
    with app.app_context(), activate(acme.info):
        assert db.session.scalar(select(func.count()).select_from(Machine)) == 5
