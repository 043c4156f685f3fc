"""Helpers shared by the licensing tests: a product, policy and license in one call."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
VALIDATE = "/api/v1/licenses/validate"


def load_verifier():
    """clients/python/license_verifier.py, imported by path exactly as an agent would."""
    name = "standalone_license_verifier"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "clients" / "python" / "license_verifier.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def make_license(app, site, *, code: str = "agent-pro", license_kwargs: dict | None = None,
                 **policy_fields) -> SimpleNamespace:
    """Create (or reuse) product ``code``, a policy with ``policy_fields`` and one license."""
    from sqlalchemy import select

    from app.extensions import db
    from app.licensing import service
    from app.licensing.models import Product
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        product = db.session.scalars(select(Product).where(Product.code == code)).first()
        if product is None:
            product = service.create_product(code.title(), code, entitlements=["chat"])
        policy_fields.setdefault("name", "Standard")
        policy = service.create_policy(product, service.PolicyInput(**policy_fields))
        license_ = service.issue_license(policy, **(license_kwargs or {}))
        db.session.commit()
        return SimpleNamespace(key=license_.key, id=license_.id, kid=license_.kid,
                               policy_id=policy.id, product_id=product.id)


def settle(app) -> None:
    """Pay what the app's validation ledger owes Redis now: what its flusher thread does
    within one sync window (tests/test_licensing_hotpath.py shows it does)."""
    from app.licensing import ledger

    with app.app_context():
        ledger.of_app().flush()


def jwks_of(site) -> dict:
    response = site.client.get("/.well-known/license-keys.json")
    assert response.status_code == 200
    return response.get_json()


def verified(site, response, request: dict, jwks: dict | None = None) -> dict:
    """The answer to ``request``, checked by clients/python exactly as an agent would (its
    clock is the app's, which tests control)."""
    from app import clock

    return load_verifier().verify_response(
        method="POST", path=VALIDATE, host=site.host, headers=dict(response.headers),
        body=response.get_data(), jwks=jwks or jwks_of(site), request=request,
        now=clock.now())


def validate(site, key: str, **body) -> dict:
    response = site.client.post(VALIDATE, json={"key": key, **body})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def flip_char(text: str, index: int) -> str:
    """Change one character of a key to another character of the key alphabet."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    old = text[index]
    new = alphabet[(alphabet.index(old) + 1) % 32] if old in alphabet else "0"
    return text[:index] + new + text[index + 1:]


def as_json(data) -> str:
    return json.dumps(data, sort_keys=True)
