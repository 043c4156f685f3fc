"""Outbound webhooks: Standard Webhooks signatures, retries on a controlled clock, 410,
five days of failures, a receiver that is down, and the walls between two tenants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from app.email.models import OutboundEmail
from app.extensions import db
from app.integrations.events import emit
from app.integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.integrations.service import Actor, create_endpoint, get_endpoint, rotate_secret
from tenants.context import activate
from tests.fakes.receiver import start_receiver
from tests.fakes.webhooks import ControlledClock, app_allowing, drain, sweep_and_drain

LICENSE = {"license_id": "lic-1", "key_prefix": "ACME", "status": "active"}


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.close()


@pytest.fixture
def hooks_app(app, migrated, receiver):
    with app_allowing(migrated, receiver.port) as application:
        yield application


@pytest.fixture
def acme_team(acme, make_user):
    return Actor(make_user(acme, "team@acme.example", role="RESELLER"), "RESELLER")


@pytest.fixture
def globex_team(globex, make_user):
    # Look-alike data: the same email in the other tenant.
    return Actor(make_user(globex, "team@acme.example", role="RESELLER"), "RESELLER")


def _endpoint(application, site, actor, url, **kwargs):
    with application.app_context(), activate(site.info):
        endpoint, secret = create_endpoint(actor, url, **kwargs)
        db.session.commit()
        return endpoint.id, secret


def _emit(application, site, event="license.created", data=None, owner=None):
    with application.app_context(), activate(site.info):
        event_row = emit(event, data or LICENSE, owner_user_id=owner)
        db.session.commit()
        return event_row.id


def _headers(recorded):
    return {k.lower(): v for k, v in recorded.headers.items()}


def test_a_delivery_is_signed_per_standard_webhooks(hooks_app, acme, acme_team, receiver):
    _, secret = _endpoint(hooks_app, acme, acme_team, receiver.url())
    event_id = _emit(hooks_app, acme)
    drain(hooks_app)

    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    payload = Webhook(secret).verify(sent.body, _headers(sent))
    assert payload["type"] == "license.created" and payload["version"] == 1
    assert payload["id"] == f"evt_{event_id.hex}" and payload["data"] == LICENSE
    assert _headers(sent)["webhook-id"].startswith("msg_")
    # Another secret does not verify: the signature really is bound to this endpoint's key.
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(sent.body, _headers(sent))


def test_rotation_signs_with_both_secrets_during_the_overlap(hooks_app, acme, acme_team,
                                                             receiver):
    endpoint_id, old_secret = _endpoint(hooks_app, acme, acme_team, receiver.url())
    with hooks_app.app_context(), activate(acme.info):
        new_secret = rotate_secret(get_endpoint(acme_team, endpoint_id),
                                   overlap=timedelta(hours=1))
        db.session.commit()
    assert new_secret != old_secret and new_secret.startswith("whsec_")
    _emit(hooks_app, acme)
    drain(hooks_app)
    sent = receiver.requests[0]
    assert len(_headers(sent)["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(sent.body, _headers(sent))
    Webhook(old_secret).verify(sent.body, _headers(sent))

    # After the overlap only the new secret signs.
    ControlledClock(datetime.now(UTC) + timedelta(hours=2))
    _emit(hooks_app, acme)
    drain(hooks_app)
    later = receiver.requests[1]
    signatures = _headers(later)["webhook-signature"].split(" ")
    ts = _headers(later)["webhook-timestamp"]
    # The library's own signer (not ours) says what the one signature must be.
    expected = Webhook(new_secret).sign(_headers(later)["webhook-id"],
                                        datetime.fromtimestamp(int(ts), UTC),
                                        later.body.decode())
    assert signatures == [expected]


def test_three_500s_then_200_is_delivered_on_attempt_4_with_one_webhook_id(
        hooks_app, acme, acme_team, receiver):
    clock = ControlledClock()
    receiver.script = [(500, {}, b"boom")] * 3 + [(200, {}, b"ok")]
    _endpoint(hooks_app, acme, acme_team, receiver.url())
    _emit(hooks_app, acme)
    drain(hooks_app)
    gaps = []
    for _ in range(3):
        with hooks_app.app_context(), activate(acme.info):
            delivery = db.session.scalars(select(WebhookDelivery)).one()
            assert delivery.status == "pending"
            gaps.append(delivery.next_attempt_at - clock.now)
            due = delivery.next_attempt_at
        # Not due yet: the sweep sends nothing.
        clock.set(due - timedelta(milliseconds=1))
        assert sweep_and_drain(hooks_app) == 0
        clock.set(due)
        assert sweep_and_drain(hooks_app) == 1

    assert [r.headers["webhook-id"] for r in receiver.requests] == (
        [receiver.requests[0].headers["webhook-id"]] * 4)
    # The schedule with its jitter: ≈0 s, 5 s, 5 min, 30 min before attempts 1-4.
    assert timedelta(seconds=4) <= gaps[0] <= timedelta(seconds=6)
    assert timedelta(minutes=4) <= gaps[1] <= timedelta(minutes=6)
    assert timedelta(minutes=26) <= gaps[2] <= timedelta(minutes=34)
    with hooks_app.app_context(), activate(acme.info):
        delivery = db.session.scalars(select(WebhookDelivery)).one()
        assert (delivery.status, delivery.attempt_count) == ("succeeded", 4)
        attempts = delivery.attempts
        assert [a.status_code for a in attempts] == [500, 500, 500, 200]
        assert attempts[0].response_excerpt == "boom" and attempts[-1].succeeded
        assert all(a.latency_ms is not None for a in attempts)


def test_retry_after_is_honoured(hooks_app, acme, acme_team, receiver):
    clock = ControlledClock()
    receiver.script = [(429, {"Retry-After": "3600"}, b"slow down"), (200, {}, b"ok")]
    _endpoint(hooks_app, acme, acme_team, receiver.url())
    _emit(hooks_app, acme)
    drain(hooks_app)
    with hooks_app.app_context(), activate(acme.info):
        delivery = db.session.scalars(select(WebhookDelivery)).one()
        assert delivery.next_attempt_at - clock.now >= timedelta(seconds=3600)
    clock.advance(minutes=59)
    assert sweep_and_drain(hooks_app) == 0
    clock.advance(minutes=2)
    sweep_and_drain(hooks_app)
    assert len(receiver.requests) == 2


def test_410_disables_the_endpoint_after_one_attempt(hooks_app, acme, acme_team, receiver):
    clock = ControlledClock()
    receiver.script = [(410, {}, b"gone")]
    endpoint_id, _ = _endpoint(hooks_app, acme, acme_team, receiver.url())
    _emit(hooks_app, acme)
    drain(hooks_app)
    clock.advance(days=1)
    _emit(hooks_app, acme)
    sweep_and_drain(hooks_app)

    assert len(receiver.requests) == 1
    with hooks_app.app_context(), activate(acme.info):
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        assert not endpoint.enabled and "410" in endpoint.disabled_reason
        delivery = db.session.scalars(select(WebhookDelivery)).one()
        assert delivery.status == "failed" and delivery.attempt_count == 1
        assert db.session.scalar(select(func.count()).select_from(OutboundEmail).where(
            OutboundEmail.to_address == "team@acme.example",
            OutboundEmail.template == "webhook_endpoint_disabled")) == 1


def test_five_days_of_failures_disable_the_endpoint_and_email_its_owner(
        hooks_app, acme, globex, acme_team, globex_team, receiver):
    clock = ControlledClock()
    start = clock.now
    receiver.script = [(503, {}, b"down")]
    endpoint_id, _ = _endpoint(hooks_app, acme, acme_team, receiver.url())
    state = {}
    for hours in range(0, 5 * 24 + 1, 6):
        clock.set(start + timedelta(hours=hours))
        _emit(hooks_app, acme)
        sweep_and_drain(hooks_app)
        with hooks_app.app_context(), activate(acme.info):
            state[hours] = db.session.get(WebhookEndpoint, endpoint_id).enabled

    assert state[114] is True, "still enabled before five days have passed"
    assert state[120] is False
    with hooks_app.app_context(), activate(acme.info):
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        assert "5 days" in endpoint.disabled_reason
        emails = db.session.scalars(select(OutboundEmail).where(
            OutboundEmail.template == "webhook_endpoint_disabled")).all()
        assert [e.to_address for e in emails] == ["team@acme.example"]
        assert emails[0].status == "sent" and receiver.url() in emails[0].text_body
    with hooks_app.app_context(), activate(globex.info):
        # The other tenant's outbox saw nothing of it.
        assert db.session.scalars(select(OutboundEmail)).all() == []
    requests_when_disabled = len(receiver.requests)
    clock.advance(days=1)
    _emit(hooks_app, acme)
    sweep_and_drain(hooks_app)
    assert len(receiver.requests) == requests_when_disabled


def test_a_receiver_down_while_100_events_fire_gets_all_100_once_back(
        hooks_app, acme, acme_team, receiver):
    clock = ControlledClock()
    port = receiver.port
    _endpoint(hooks_app, acme, acme_team, receiver.url())
    receiver.close()  # down: connections are refused
    for n in range(100):
        _emit(hooks_app, acme, data={**LICENSE, "license_id": f"lic-{n}"})
    drain(hooks_app)
    with hooks_app.app_context(), activate(acme.info):
        statuses = db.session.scalars(select(WebhookDelivery.status)).all()
        assert statuses == ["pending"] * 100
        assert db.session.scalar(select(func.count()).select_from(WebhookAttempt)) == 100

    back = start_receiver(port)
    try:
        clock.advance(minutes=1)
        assert sweep_and_drain(hooks_app) == 100
        # Later sweeps, and duplicate jobs for the same attempts, send nothing more.
        clock.advance(hours=12)
        assert sweep_and_drain(hooks_app) == 0
        from app.integrations.events import DELIVER_TASK
        from jobs.enqueue import enqueue

        with hooks_app.app_context(), activate(acme.info):
            for delivery_id in db.session.scalars(select(WebhookDelivery.id)).all():
                enqueue(DELIVER_TASK, str(delivery_id))
        drain(hooks_app)

        ids = [r.headers["webhook-id"] for r in back.requests]
        assert len(ids) == 100 and len(set(ids)) == 100
        import json

        licenses = {json.loads(r.body)["data"]["license_id"] for r in back.requests}
        assert licenses == {f"lic-{n}" for n in range(100)}
        with hooks_app.app_context(), activate(acme.info):
            assert set(db.session.scalars(select(WebhookDelivery.status)).all()) == {
                "succeeded"}
    finally:
        back.close()


def test_two_tenants_never_see_or_affect_each_others_endpoints(
        hooks_app, acme, globex, acme_team, globex_team, receiver):
    acme_ep, _ = _endpoint(hooks_app, acme, acme_team, receiver.url("/acme"))
    globex_ep, _ = _endpoint(hooks_app, globex, globex_team, receiver.url("/globex"))
    _emit(hooks_app, acme)
    _emit(hooks_app, acme)
    _emit(hooks_app, globex)
    sweep_and_drain(hooks_app)
    assert sorted(r.path for r in receiver.requests) == ["/acme", "/acme", "/globex"]

    from app.errors import ApiError
    from app.integrations.service import deliveries_query, endpoints_query

    with hooks_app.app_context(), activate(globex.info):
        assert [e.id for e in db.session.scalars(endpoints_query(globex_team))] == [globex_ep]
        assert len(db.session.scalars(deliveries_query(globex_team)).all()) == 1
        with pytest.raises(ApiError) as err:
            get_endpoint(globex_team, acme_ep)  # even with the other tenant's real id
        assert err.value.status == 404
        # Acting inside globex, not even acme's own team reaches acme's endpoint.
        with pytest.raises(ApiError):
            get_endpoint(acme_team, acme_ep)
    with hooks_app.app_context(), activate(acme.info):
        assert len(db.session.scalars(deliveries_query(acme_team)).all()) == 2
