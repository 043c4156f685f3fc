"""A small, realistic dashboard for browser tests: each role has something in its tables,
and a second reseller (globex) holds look-alike data that must never show at acme."""

from __future__ import annotations

from tests.agents_support import make_agent
from tests.licensing_support import make_license

ADMIN = "admin@example.com"
OWNER = "owner@acme.example"
CUSTOMER = "customer@acme.example"


def _key(app, site, user_id, name: str, scopes: list[str]) -> None:
    from app.auth.api_keys import create_key
    from app.auth.models import User
    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        create_key(db.session.get(User, user_id), name, scopes)
        db.session.commit()


def _pending_domain(app, site, hostname: str) -> None:
    from app.extensions import db
    from tenants.service import add_domain, get_by_slug

    with app.app_context():
        add_domain(get_by_slug(site.info.slug), hostname)
        db.session.commit()


def seed_dashboard(app, platform, acme, globex, make_user) -> dict:
    """Users of the three roles (and globex's look-alikes), an agent, a license, keys and a
    custom domain waiting for its DNS record. Returns {role: (site, email)}."""
    make_user(platform, ADMIN, role="ADMIN", name="Ada Admin")
    owner = make_user(acme, OWNER, role="RESELLER", name="Olive Owner")
    customer = make_user(acme, CUSTOMER, name="Casey Customer")
    rival_owner = make_user(globex, "owner@globex.example", role="RESELLER")
    rival_customer = make_user(globex, CUSTOMER, name="Casey Customer")
    make_agent(app, acme, owner, role="RESELLER", slug="support-bot")
    make_agent(app, acme, customer, slug="helper")
    make_agent(app, globex, rival_owner, role="RESELLER", slug="support-bot")
    make_license(app, acme, license_kwargs={"name": "Casey's desktop",
                                            "customer_email": CUSTOMER})
    make_license(app, globex, license_kwargs={"name": "Casey's desktop",
                                              "customer_email": CUSTOMER})
    _key(app, acme, customer, "widget", ["agents:execute"])
    _key(app, globex, rival_customer, "widget", ["agents:execute"])
    _pending_domain(app, acme, "agents.acme.test")
    _pending_domain(app, globex, "agents.globex.test")
    return {"ADMIN": (platform, ADMIN), "RESELLER": (acme, OWNER), "USER": (acme, CUSTOMER)}
