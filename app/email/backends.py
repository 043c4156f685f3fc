"""Where emails go: the database outbox (development), SMTP, or SendGrid's official client."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr

from app.email.models import OutboundEmail
from app.settings import Settings
from jobs.registry import PermanentError, TransientError


def message_id_for(email: OutboundEmail) -> str:
    """The email's Message-ID: its id at its tenant's domain, the same for every attempt.

    make_msgid() adds the time and randomness, so a resend after an uncertain outcome (a
    worker killed after the server accepted the message) looked like a new message; derived
    from the id, receiving servers and clients can recognise the repeat. The domain is the
    tenant's primary host (white label: never the platform's name on a reseller's mail).
    """
    from tenants.context import current_or_none

    tenant = current_or_none()
    domain = tenant.primary_host if tenant is not None and tenant.id == email.tenant_id \
        else email.from_address.rpartition("@")[2]
    domain = domain.split(":", 1)[0] or "localhost"
    return f"<{email.id}@{domain}>"


class OutboxBackend:
    """Keeps the email in the database only; platform admins read it at /admin/outbox."""

    name = "outbox"

    def send(self, email: OutboundEmail) -> str | None:
        return None


class SmtpBackend:
    name = "smtp"

    def __init__(self, settings: Settings):
        self.settings = settings

    def send(self, email: OutboundEmail) -> str | None:
        message = EmailMessage()
        message["From"] = formataddr((email.from_name, email.from_address))
        message["To"] = email.to_address
        message["Subject"] = email.subject
        if email.reply_to:
            message["Reply-To"] = email.reply_to
        # Stable per email, so a retried send is recognisable as the same message.
        message["Message-ID"] = message_id_for(email)
        message.set_content(email.text_body)
        message.add_alternative(email.html_body, subtype="html")
        s = self.settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15) as smtp:
                if s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TransientError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
            raise PermanentError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"SMTP server unreachable: {exc}") from exc
        return message["Message-ID"]


class SendGridBackend:
    name = "sendgrid"

    def __init__(self, settings: Settings):
        if not settings.sendgrid_api_key:
            raise PermanentError("SendGrid is not configured: set SENDGRID_API_KEY")
        self.settings = settings

    def send(self, email: OutboundEmail) -> str | None:
        from python_http_client.exceptions import HTTPError
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import From, Header, Mail, ReplyTo

        client = SendGridAPIClient(api_key=self.settings.sendgrid_api_key,
                                   host=self.settings.sendgrid_host)
        mail = Mail(from_email=From(email.from_address, email.from_name),
                    to_emails=email.to_address, subject=email.subject,
                    plain_text_content=email.text_body, html_content=email.html_body)
        if email.reply_to:
            mail.reply_to = ReplyTo(email.reply_to)
        # SendGrid has no idempotency key: the same Message-ID header on every attempt lets
        # receivers recognise a repeat, and a custom arg lets support match retries.
        mail.header = Header("Message-ID", message_id_for(email))
        mail.custom_arg = [_custom_arg("albedo_email_id", str(email.id))]
        try:
            response = client.send(mail)
        except HTTPError as exc:
            status = getattr(exc, "status_code", 0)
            detail = f"SendGrid answered {status}: {getattr(exc, 'body', b'')[:300]!r}"
            if status == 429 or status >= 500:
                raise TransientError(detail) from exc
            raise PermanentError(detail) from exc
        except OSError as exc:
            raise TransientError(f"SendGrid unreachable: {exc}") from exc
        return response.headers.get("X-Message-Id") if response.headers else None


def _custom_arg(key: str, value: str):
    from sendgrid.helpers.mail import CustomArg

    return CustomArg(key, value)


def backend_for(settings: Settings):
    if settings.email_backend == "smtp":
        return SmtpBackend(settings)
    if settings.email_backend == "sendgrid":
        return SendGridBackend(settings)
    return OutboxBackend()
