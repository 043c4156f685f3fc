"""Error tracking: events reach Sentry (a local stand-in) tagged with the request, tenant and
job ids, and with every credential scrubbed."""

from __future__ import annotations

import pytest

from jobs.registry import task
from tests.fakes.sentry_server import start_fake_sentry

API_KEY = "ak_0123abcd_" + "S" * 43
LICENSE_KEY = "ACME-" + "7" * 120
PROVIDER_KEY = "sk-provider0123456789abcdefghijkl"
WEBHOOK_SECRET = "whsec_c2VjcmV0LXdlYmhvb2stc2lnbmluZy1rZXk="
SECRETS = (API_KEY, LICENSE_KEY, PROVIDER_KEY, WEBHOOK_SECRET, "session-cookie-value-42")


@task("tests.ops_boom", retry_intervals=())
def _boom(note: str) -> None:
    provider_key = PROVIDER_KEY  # a local variable Sentry would otherwise show  # noqa: F841
    raise RuntimeError(f"provider refused {PROVIDER_KEY} ({note})")


@pytest.fixture
def sentry():
    import sentry_sdk

    fake = start_fake_sentry()
    yield fake
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.init()  # a disabled client: later tests send nothing anywhere
    fake.close()


@pytest.fixture
def sentry_app(app, migrated, sentry):
    from app import create_app

    application = create_app(migrated.with_overrides(sentry_dsn=sentry.dsn()))

    def explode():
        webhook_secret = WEBHOOK_SECRET  # noqa: F841  (a local Sentry must not show)
        raise RuntimeError(f"could not check license {LICENSE_KEY} with {API_KEY}")

    application.add_url_rule("/api/v1/_ops_test_boom", "ops_test_boom", explode,
                             methods=["POST"])
    yield application
    with application.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


def _assert_scrubbed(sentry) -> None:
    for body in sentry.raw:
        for secret in SECRETS:
            assert secret.encode() not in body, f"{secret[:12]}… reached Sentry"


def test_a_request_error_is_tagged_and_scrubbed(sentry_app, sentry, acme):
    import sentry_sdk

    client = sentry_app.test_client()
    answer = client.post("/api/v1/_ops_test_boom", headers={
        "Host": acme.host, "X-Request-ID": "req-ops-42", "Authorization": f"Bearer {API_KEY}",
        "Cookie": "session=session-cookie-value-42",
        "Stripe-Signature": f"t=1,v1={WEBHOOK_SECRET}"},
        json={"key": LICENSE_KEY, "provider_key": PROVIDER_KEY, "note": "visible"})
    assert answer.status_code == 500
    assert answer.get_json()["error"]["code"] == "internal_error"
    sentry_sdk.flush(timeout=5)
    events = sentry.wait_for_events(1)
    event = events[0]
    assert event["tags"]["request_id"] == "req-ops-42"
    assert event["tags"]["tenant"] == "acme"
    assert event["environment"] == "testing"
    assert any(e["type"] == "RuntimeError" for e in event["exception"]["values"])
    _assert_scrubbed(sentry)
    assert b"[Filtered]" in sentry.raw[0]


def test_a_job_error_carries_the_job_id(sentry_app, sentry, acme):
    import sentry_sdk

    from jobs.enqueue import enqueue
    from tenants.context import activate
    from tests.jobs_helpers import run_jobs

    with sentry_app.app_context(), activate(acme.info):
        job = enqueue("tests.ops_boom", "from a job")
    run_jobs(sentry_app, "default")
    sentry_sdk.flush(timeout=5)
    events = sentry.wait_for_events(1)
    tagged = [e for e in events if e.get("tags", {}).get("job_id") == job.id]
    assert tagged, [e.get("tags") for e in events]
    assert all(e["tags"]["tenant"] == "acme" for e in tagged)
    assert tagged[0]["tags"]["task"] == "tests.ops_boom"
    _assert_scrubbed(sentry)


def test_without_a_dsn_nothing_is_sent(app, sentry, acme):
    from app.ops import sentry as ops_sentry

    assert ops_sentry.init(app.extensions["albedo.settings"]) is False
    assert acme.client.get("/api/v1/no-such-thing").status_code == 404
    assert sentry.raw == []


def test_free_text_credentials_are_replaced():
    from app.ops.sentry import scrub_text

    text = (f"Bearer abc.def.ghi-123 {API_KEY} {LICENSE_KEY} {PROVIDER_KEY} {WEBHOOK_SECRET} "
            "sk_live_abcdefgh12345678 and an ordinary sentence")
    cleaned = scrub_text(text)
    for secret in (*SECRETS[:4], "abc.def.ghi-123", "sk_live_abcdefgh12345678"):
        assert secret not in cleaned
    assert cleaned.endswith("and an ordinary sentence")
