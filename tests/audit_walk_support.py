"""The audit walk's pieces: which operations of the OpenAPI document change state, and a
small world (two resellers, the platform, staff and a customer) to call them in."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from tests import billing_support

MUTATING = ("post", "put", "patch", "delete")
# Response fields whose values are secrets (shown once to the caller, never in the log).
SECRET_FIELDS = {"key", "secret", "token", "api_key", "refresh_token", "access_token",
                 "license_key", "raw"}


def mutating_operations(document: dict[str, Any]) -> set[str]:
    """"METHOD /path" of every operation in the document that may change state."""
    return {f"{method.upper()} {path}" for path, item in document.get("paths", {}).items()
            for method in item if method in MUTATING}


def uncovered(document: dict[str, Any], walked: Iterable[str], excused: Iterable[str]
              ) -> tuple[set[str], set[str]]:
    """(operations neither walked nor excused, walked or excused names not in the document)."""
    operations = mutating_operations(document)
    named = set(walked) | set(excused)
    return operations - named, named - operations


@dataclass
class Call:
    """One request of the walk, and who makes it (the audit entry must name them)."""

    site: Any
    method: str
    path: str
    actor: Any  # a tests.conftest.Caller
    json: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


@dataclass
class World:
    app: Any
    platform: Any
    acme: Any
    globex: Any
    owner: Any  # acme's reseller staff (API key)
    customer: Any  # acme's customer (API key)
    admin: Any  # the platform operator (API key)
    receiver: Any  # a local webhook receiver
    fake_stripe: Any
    api_caller: Callable[..., Any]
    secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for caller in (self.owner, self.customer, self.admin):
            self.secrets.append(caller.headers["Authorization"].split(" ", 1)[1])
        self.secrets.append("correct horse battery")  # every test user's password

    # -- seeds, each through the product's own service or API ---------------------------

    def ctx(self, site=None):
        from tenants.context import activate

        return _Both(self.app.app_context(), activate((site or self.acme).info))

    def agent(self, slug: str = "helper") -> uuid.UUID:
        from tests.agents_support import make_agent

        return make_agent(self.app, self.acme, self.owner.user_id, role="RESELLER", slug=slug)

    def license(self, **policy_fields: Any) -> SimpleNamespace:
        from tests.licensing_support import make_license

        made = make_license(self.app, self.acme, **policy_fields)
        self.secrets.append(made.key)
        return made

    def plan(self, code: str = "pro") -> uuid.UUID:
        from app.billing.plans import create_plan
        from app.extensions import db

        price = self.fake_stripe.add_price(unit_amount=1900)
        with self.ctx():
            plan = create_plan(code, code.title(), amount_minor=1900, stripe_price_id=price)
            db.session.commit()
            return plan.id

    def book(self) -> None:
        from tests.rebilling_support import set_book

        set_book(self.app, self.acme, kind="execution", per_execution_minor=30)

    def price(self) -> str:
        self.book()
        made = self.post(self.acme, "/api/v1/billing/prices", self.owner,
                         {"kind": "execution", "model": "gpt-4o", "per_execution_minor": 5})
        return made["id"]

    def charge(self) -> uuid.UUID:
        from app import clock
        from app.billing import ledger
        from app.extensions import db

        self.book()
        with self.ctx():
            execution = SimpleNamespace(
                id=uuid.uuid4(), caller_user_id=self.customer.user_id, prompt_tokens=10,
                completion_tokens=10, cost_micros=1000, agent_id=uuid.uuid4(),
                model="gpt-4o-mini", version_number=1, finished_at=clock.now(), source="api",
                license_id=None, api_key_id=None, started_at=clock.now())
            entry = ledger.record(execution, "succeeded")
            db.session.commit()
            return entry.id

    def endpoint(self) -> str:
        made = self.post(self.acme, "/api/v1/webhooks/endpoints", self.owner,
                         {"url": self.receiver.url("/acme")})
        self.secrets.append(made["secret"])
        return made["id"]

    def failed_delivery(self) -> str:
        from app.extensions import db
        from app.integrations.models import WebhookDelivery

        endpoint_id = self.endpoint()
        self.post(self.acme, f"/api/v1/webhooks/endpoints/{endpoint_id}/test", self.owner)
        with self.ctx():
            delivery = db.session.scalars(select(WebhookDelivery)).one()
            delivery.status = "failed"
            db.session.commit()
            return str(delivery.id)

    def hook(self) -> str:
        return self.post(self.acme, "/api/v1/hooks", self.owner,
                         {"target_url": self.receiver.url("/zap"),
                          "event": "license.created"})["id"]

    def invitation(self) -> str:
        return self.post(self.acme, "/api/v1/invitations", self.owner,
                         {"email": "new@example.com", "role": "USER"})["id"]

    def widget_key(self) -> str:
        from tests.widget_support import make_widget

        return make_widget(self.acme.client, self.owner.headers)["id"]

    def conversation(self) -> uuid.UUID:
        from app import clock
        from app.agents.models import Conversation
        from app.extensions import db

        agent_id = self.agent()
        with self.ctx():
            row = Conversation(agent_id=agent_id, user_id=self.customer.user_id,
                               title="Where is my order?", created_at=clock.now(),
                               updated_at=clock.now())
            db.session.add(row)
            db.session.commit()
            return row.id

    def domain(self) -> str:
        return self.post(self.platform, f"/api/v1/platform/resellers/{self.acme.info.id}/domains",
                         self.admin, {"hostname": "agents.acme.example"})["id"]

    def domain_in_dns(self) -> str:
        """A pending custom domain of acme whose TXT record is published (the lookup passes)."""
        from tenants.verification import record_name

        made = self.post(self.platform, f"/api/v1/platform/resellers/{self.acme.info.id}/domains",
                         self.admin, {"hostname": "agents.acme.example"})
        self.app.extensions["test_dns"].set_txt(record_name(made["hostname"]),
                                                made["verification_token"])
        return made["id"]

    def owner_invitation(self) -> str:
        from app.auth.models import Invitation
        from app.extensions import db

        self.post(self.platform, "/api/v1/platform/resellers", self.admin,
                  {"name": "Initech", "slug": "initech", "owner_email": "boss@initech.example"})
        from tenants.context import cross_tenant

        with self.app.app_context(), cross_tenant("the test finds the owner's invitation"):
            row = db.session.scalars(select(Invitation)).one()
            return f"{row.tenant_id}/invitations/{row.id}"

    def failed_email(self) -> str:
        from app.email.service import send_email
        from app.extensions import db

        with self.ctx():
            email = send_email("ann@example.com", "account_exists",
                               {"link": "https://x.example"})
            email.status, email.attempts, email.last_error = "failed", 5, "SMTP said no"
            db.session.commit()
            return str(email.id)

    def signed_in(self, caller) -> dict[str, str]:
        """A user's access token (API keys are made with one, not with another key)."""
        pair = self.post(self.acme, "/api/v1/auth/token", caller,
                         {"email": caller.email, "password": "correct horse battery"})
        self.secrets.extend(secrets_in(pair))
        return {"Authorization": f"Bearer {pair['access_token']}"}

    def post(self, site, path: str, caller, body: dict | None = None,
             method: str = "POST") -> dict[str, Any]:
        answer = site.client.open(path, method=method, headers=caller.headers, json=body or {})
        assert answer.status_code < 300, (path, answer.get_json())
        return answer.get_json() or {}


class _Both:
    def __init__(self, *managers) -> None:
        self.managers = managers

    def __enter__(self):
        for manager in self.managers:
            manager.__enter__()

    def __exit__(self, *exc):
        for manager in reversed(self.managers):
            manager.__exit__(*exc)


def secrets_in(answer: Any) -> list[str]:
    """Secret values a response hands to its caller (a new key, a webhook secret...)."""
    found: list[str] = []
    if isinstance(answer, dict):
        for name, value in answer.items():
            if name in SECRET_FIELDS and isinstance(value, str) and len(value) >= 12:
                found.append(value)
            else:
                found.extend(secrets_in(value))
    elif isinstance(answer, list):
        for value in answer:
            found.extend(secrets_in(value))
    return found


def audit_ids(app) -> set[uuid.UUID]:
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants.context import cross_tenant

    with app.app_context(), cross_tenant("the test reads every audit log"):
        return set(db.session.scalars(select(AuditEvent.id)))


def new_entries(app, before: set[uuid.UUID]) -> list[dict[str, Any]]:
    """The audit entries written since ``before``, each with its sentence."""
    from app.auth.audit_text import describe
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants.context import cross_tenant

    with app.test_request_context("/"), cross_tenant("the test reads every audit log"):
        rows = [e for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.created_at))
                if e.id not in before]
        lines = describe(rows, cross=True)
        return [{"action": e.action, "tenant_id": e.tenant_id, "actor_user_id": e.actor_user_id,
                 "actor_label": e.actor_label, "target_type": e.target_type,
                 "target_id": e.target_id, "details": e.details, "sentence": line.sentence,
                 "text": json.dumps([e.details, line.sentence, e.actor_label, e.target_id],
                                    default=str)}
                for e, line in zip(rows, lines, strict=True)]


def assert_audited(world: World, what: str, actor, entries: list[dict[str, Any]],
                   secrets: list[str]) -> None:
    """``what``, done by ``actor``, wrote entries naming actor, tenant and target, each a
    sentence in product words with no secret in it, none in the look-alike tenant."""
    from app.auth.audit_text import VERBS

    assert entries, f"{what} wrote no audit entry"
    for entry in entries:
        # The reseller's copy of an operator's action says "platform operator" only.
        assert entry["actor_user_id"] == actor.user_id or (
            actor is world.admin and entry["actor_label"] == "platform operator"), entry
        assert entry["tenant_id"] is not None
        assert entry["target_type"] and entry["target_id"], entry
        assert entry["action"] in VERBS, entry["action"]
        assert not re.search(r"(^|[\s(])\?([\s),]|$)", entry["sentence"]), entry["sentence"]
        for secret in secrets:
            assert secret not in entry["text"], (what, entry["action"])
    assert any(e["actor_user_id"] == actor.user_id for e in entries)
    assert all(e["tenant_id"] != world.globex.info.id for e in entries)


@pytest.fixture
def app(app, migrated, fake_stripe, receiver):
    """The test's empty database, with Stripe (the fake) and the local receiver allowed
    (assign ``app = audit_walk_support.app`` in the module, with ``fake_stripe`` and
    ``receiver``)."""
    from tests.fakes.dns_server import FakeDNSServer

    dns = FakeDNSServer().start()  # custom domains are verified by a real TXT lookup
    application = billing_support.create_app(billing_support.stripe_settings(
        migrated, fake_stripe, ALBEDO_SSRF_ALLOW=f"127.0.0.1:{receiver.port}",
        ALBEDO_DNS_RESOLVER=dns.address))
    application.extensions["test_dns"] = dns
    yield application
    billing_support.dispose(application)
    dns.stop()


@pytest.fixture
def world(app, platform, acme, globex, api_caller, receiver, fake_stripe) -> World:
    return World(app=app, platform=platform, acme=acme, globex=globex,
                 owner=api_caller(acme, role="RESELLER", email="owner@acme.example"),
                 customer=api_caller(acme, role="USER", email="ann@example.com"),
                 admin=api_caller(platform, role="ADMIN", email="ops@example.com"),
                 receiver=receiver, fake_stripe=fake_stripe, api_caller=api_caller)
