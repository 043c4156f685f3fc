"""SendGrid (official client, local stand-in over HTTP) and SMTP backends; retries."""

import pytest

from app import create_app
from app.email.models import OutboundEmail
from app.extensions import db
from tenants import activate
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.smtp_server import FakeSmtp
from tests.jobs_helpers import release_scheduled, run_jobs


@pytest.fixture
def sendgrid():
    fake = FakeSendGrid()
    yield fake
    fake.close()


def _queue_email(app, site, to="alice@example.com"):
    from app.email.service import send_email

    with app.app_context(), activate(site.info):
        email = send_email(to, "welcome", {"name": "Alice"})
        db.session.commit()
        return email.id


def _email(app, site, email_id):
    with app.app_context(), activate(site.info):
        return db.session.get(OutboundEmail, email_id)


def test_sendgrid_sends_through_the_official_client(migrated, acme, globex, sendgrid):
    app = create_app(migrated.with_overrides(email_backend="sendgrid",
                                             sendgrid_api_key="SG.test-key",
                                             sendgrid_host=sendgrid.url))
    acme_id = _queue_email(app, acme)
    globex_id = _queue_email(app, globex, "bob@example.com")
    run_jobs(app, "emails")
    assert _email(app, acme, acme_id).status == "sent"
    assert _email(app, acme, acme_id).provider_message_id
    by_to = {m["personalizations"][0]["to"][0]["email"]: m for m in sendgrid.messages}
    acme_mail = by_to["alice@example.com"]
    assert acme_mail["from"] == {"email": "no-reply@localhost", "name": "Acme Agents"}
    assert acme_mail["reply_to"]["email"] == "support@acme.example"
    assert acme_mail["subject"] == "Welcome to Acme Agents"
    assert by_to["bob@example.com"]["from"]["name"] == "Globex AI"
    assert _email(app, globex, globex_id).status == "sent"


def test_sendgrid_5xx_is_retried_then_delivered_once(migrated, acme, sendgrid):
    app = create_app(migrated.with_overrides(email_backend="sendgrid",
                                             sendgrid_api_key="SG.test-key",
                                             sendgrid_host=sendgrid.url))
    sendgrid.fail_with = [503]
    email_id = _queue_email(app, acme)
    run_jobs(app, "emails")
    email = _email(app, acme, email_id)
    assert (email.status, email.attempts) == ("retrying", 1)
    assert "503" in email.last_error
    assert release_scheduled(app, "emails") == 1
    run_jobs(app, "emails")
    email = _email(app, acme, email_id)
    assert (email.status, email.attempts) == ("sent", 2)
    assert len(sendgrid.messages) == 1


def test_a_rejected_api_key_fails_at_once_without_retry(migrated, acme, sendgrid):
    app = create_app(migrated.with_overrides(email_backend="sendgrid",
                                             sendgrid_api_key="SG.wrong",
                                             sendgrid_host=sendgrid.url))
    email_id = _queue_email(app, acme)
    run_jobs(app, "emails")
    email = _email(app, acme, email_id)
    assert email.status == "failed" and "401" in email.last_error
    assert release_scheduled(app, "emails") == 0


def test_smtp_backend_sends_a_branded_multipart_message(migrated, acme):
    smtp = FakeSmtp()
    try:
        app = create_app(migrated.with_overrides(email_backend="smtp", smtp_host="127.0.0.1",
                                                 smtp_port=smtp.port))
        email_id = _queue_email(app, acme)
        run_jobs(app, "emails")
        assert _email(app, acme, email_id).status == "sent"
        message = smtp.messages[0]
        assert [r.lower() for r in smtp.envelopes[0][1]] == ["rcpt to:<alice@example.com>"]
        assert message["From"] == "Acme Agents <no-reply@localhost>"
        assert message["Reply-To"] == "support@acme.example"
        assert message.get_body(("plain",)).get_content().startswith("Hello Alice")
        assert "#e11d48" in message.get_body(("html",)).get_content()
    finally:
        smtp.close()


def test_sendgrid_without_an_api_key_is_a_configuration_error(migrated):
    from app.settings import SettingsError

    with pytest.raises(SettingsError, match="SENDGRID_API_KEY"):
        migrated.with_overrides(email_backend="sendgrid", sendgrid_api_key="")
