"""Signing keys over their life: made with the tenant, and rotated or retired in one process
with effect in every other at once (a generation bump, as license snapshots have)."""

from __future__ import annotations

import pytest

from tests.licensing_support import VALIDATE, jwks_of, load_verifier, make_license, verified


def _other_app(migrated, **overrides):
    from app import create_app

    return create_app(migrated.with_overrides(**overrides))


@pytest.fixture
def exact_process(app, migrated):
    """Another process over the same database and Redis that asks Redis at every
    validation (ALBEDO_LICENSE_SYNC_SECONDS=0)."""
    from app.extensions import db
    from tests.conftest import close_ledger

    other = _other_app(migrated, license_sync_seconds=0)
    yield other
    close_ledger(other)
    with other.app_context():
        db.session.remove()


def _post(app, site, body, path=VALIDATE, **kwargs):
    from tests.conftest import host_client

    return host_client(app, site.host).post(path, json=body, **kwargs)


def test_a_tenant_created_a_moment_ago_publishes_a_key(app, make_tenant):
    fresh = make_tenant("initech", name="Initech")
    other = make_tenant("hooli", name="Hooli")
    jwks = jwks_of(fresh)
    assert len(jwks["keys"]) == 1 and jwks["retired_kids"] == []
    assert jwks["keys"] != jwks_of(other)["keys"]
    # That key is the one its first license is signed with.
    lic = make_license(app, fresh)
    assert lic.kid == jwks["keys"][0]["kid"]


def test_a_tenant_created_through_the_platform_api_has_a_key_at_once(app, platform,
                                                                       api_caller):
    caller = api_caller(platform, role="ADMIN")
    created = platform.client.post("/api/v1/platform/resellers", headers=caller.headers,
                                   json={"slug": "vandelay", "name": "Vandelay"})
    assert created.status_code == 201, created.get_data(as_text=True)
    from tests.conftest import host_client

    client = host_client(app, "vandelay.localhost")
    assert client.get("/.well-known/license-keys.json").get_json()["keys"]


def test_retirement_in_one_process_is_seen_by_another_at_once(app, exact_process, acme,
                                                             globex):
    """`app` retires; `exact_process` (another app: its own key cache, snapshots and
    ledger) had the old key warm and refuses it at its very next validation."""
    old = make_license(app, acme)
    theirs = make_license(app, globex)
    result = app.test_cli_runner().invoke(args=["albedo", "rotate-license-key", "acme"])
    assert result.exit_code == 0, result.output
    new = make_license(app, acme, code="agent-lite")
    for key in (old.key, new.key):  # warm the other process's caches
        assert _post(exact_process, acme, {"key": key}).get_json()["code"] == "VALID"
    assert _post(exact_process, globex, {"key": theirs.key}).get_json()["code"] == "VALID"

    result = app.test_cli_runner().invoke(
        args=["albedo", "retire-license-key", "acme", old.kid])
    assert result.exit_code == 0, result.output

    request = {"key": old.key, "nonce": "after-retire"}
    response = _post(exact_process, acme, request)
    jwks = jwks_of(acme)
    answer = verified(acme, response, request, jwks)
    assert answer["code"] == "BAD_SIGNATURE"
    assert jwks["retired_kids"] == [old.kid]
    # The offline verifier agrees with the server: BAD_SIGNATURE, not UNKNOWN_KEY.
    verifier = load_verifier()
    with pytest.raises(verifier.KeyInvalid) as refused:
        verifier.verify_key(old.key, jwks)
    assert refused.value.code == "BAD_SIGNATURE"
    assert _post(exact_process, acme, {"key": new.key}).get_json()["code"] == "VALID"
    # The machine endpoints of the other process refuse the retired key too.
    machine = _post(exact_process, acme, {"fingerprint": "fp-1"}, path="/api/v1/machines",
                    headers={"Authorization": f"License {old.key}"})
    assert machine.status_code == 401
    assert _post(exact_process, globex, {"key": theirs.key}).get_json()["code"] == "VALID"


def test_within_a_sync_window_then_after_it(app, migrated, acme, globex):
    """With the default window, a warm process answers from its ledger for at most one
    window, then sees the retirement (as it sees a suspension)."""
    from app.licensing import ledger

    second = _other_app(migrated)
    try:
        old = make_license(app, acme)
        app.test_cli_runner().invoke(args=["albedo", "rotate-license-key", "acme"])
        make_license(app, globex)
        with second.app_context():
            book = ledger.of_app()
        clock = [book.monotonic()]
        book.monotonic = lambda: clock[0]
        assert _post(second, acme, {"key": old.key}).get_json()["code"] == "VALID"
        app.test_cli_runner().invoke(args=["albedo", "retire-license-key", "acme", old.kid])
        clock[0] += book.window + 0.001
        assert _post(second, acme, {"key": old.key}).get_json()["code"] == "BAD_SIGNATURE"
    finally:
        from tests.conftest import close_ledger

        close_ledger(second)


def test_after_a_rotation_every_process_signs_with_the_new_key(app, exact_process, acme,
                                                               globex):
    before = make_license(exact_process, acme)  # exact_process has the old key cached now
    make_license(exact_process, globex)
    assert _post(exact_process, acme, {"key": before.key}).get_json()["code"] == "VALID"
    result = app.test_cli_runner().invoke(args=["albedo", "rotate-license-key", "acme"])
    assert result.exit_code == 0
    new_kid = jwks_of(acme)["keys"][0]["kid"]
    after = make_license(exact_process, acme, code="agent-lite")
    assert after.kid == new_kid != before.kid
    # Answers are signed with the new key by the other process too.
    response = _post(exact_process, acme, {"key": after.key})
    assert f'keyid="{new_kid}"' in response.headers["License-Signature"]
    verified(acme, response, {"key": after.key})


def test_a_key_signed_after_a_rotation_elsewhere_is_known_at_once(app, exact_process, acme,
                                                                 globex):
    """The other process has only the old key loaded: the new kid is not unknown there for
    a moment (NOT_FOUND), its very next validation learns the keys moved."""
    old = make_license(app, acme)
    make_license(app, globex)
    assert _post(exact_process, acme, {"key": old.key}).get_json()["code"] == "VALID"
    assert app.test_cli_runner().invoke(
        args=["albedo", "rotate-license-key", "acme"]).exit_code == 0
    new = make_license(app, acme, code="agent-lite")
    assert new.kid != old.kid
    request = {"key": new.key, "nonce": "n-new"}
    assert verified(acme, _post(exact_process, acme, request), request)["code"] == "VALID"
