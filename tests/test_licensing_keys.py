"""Per-reseller signing keys: encrypted at rest, bound to the tenant, rotated, published."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.licensing_support import jwks_of, make_license, validate


def _rows(app, site):
    from app.extensions import db
    from app.licensing.models import SigningKey
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        return [(r.kid, r.public_key, r.private_key_encrypted, r.retired_at)
                for r in db.session.scalars(select(SigningKey))]


def test_each_reseller_publishes_only_its_own_keys(app, acme, globex):
    a = make_license(app, acme)
    g = make_license(app, globex)
    acme_jwks, globex_jwks = jwks_of(acme), jwks_of(globex)
    assert [k["kid"] for k in acme_jwks["keys"]] == [a.kid]
    assert [k["kid"] for k in globex_jwks["keys"]] == [g.kid]
    assert a.kid != g.kid
    jwk = acme_jwks["keys"][0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in jwk  # never the private part
    assert jwk["x"] == _rows(app, acme)[0][1]


def test_private_key_is_encrypted_and_bound_to_its_tenant(app, acme, globex):
    import base64

    from app import secrets_box
    from app.extensions import db
    from app.licensing import signing
    from app.licensing.models import SigningKey
    from tenants.context import activate

    make_license(app, acme)
    make_license(app, globex)
    kid, _, blob, _ = _rows(app, acme)[0]
    with app.app_context():
        raw = secrets_box.decrypt(blob, acme.info.id, f"license-signing-key:{kid}")
        assert len(raw) == 32 and base64.b64encode(raw).decode() not in blob
        with pytest.raises(secrets_box.SecretError):
            secrets_box.decrypt(blob, globex.info.id, f"license-signing-key:{kid}")
        # A ciphertext copied into another tenant's row does not decrypt there.
        with activate(globex.info):
            row = db.session.scalars(select(SigningKey)).one()
            row.private_key_encrypted = blob
            db.session.commit()
            app.extensions.pop("albedo.license_keys", None)
            with pytest.raises(secrets_box.SecretError):
                signing.keyset()


def test_rotation_keeps_old_keys_verifying_and_signs_with_the_new_kid(app, acme, globex):
    old = make_license(app, acme)
    globex_license = make_license(app, globex)
    globex_kids = [k["kid"] for k in jwks_of(globex)["keys"]]

    result = app.test_cli_runner().invoke(args=["albedo", "rotate-license-key", "acme"])
    assert result.exit_code == 0, result.output
    new = make_license(app, acme, code="agent-lite")
    assert new.kid != old.kid and new.kid in result.output
    assert [k["kid"] for k in jwks_of(acme)["keys"]] == [new.kid, old.kid]
    assert validate(acme, old.key)["code"] == "VALID"
    assert validate(acme, new.key)["code"] == "VALID"
    # The other reseller's keys did not move.
    assert [k["kid"] for k in jwks_of(globex)["keys"]] == globex_kids
    assert validate(globex, globex_license.key)["code"] == "VALID"

    # Retiring the old key: what it signed stops validating, the JWKS drops it.
    result = app.test_cli_runner().invoke(
        args=["albedo", "retire-license-key", "acme", old.kid])
    assert result.exit_code == 0, result.output
    assert [k["kid"] for k in jwks_of(acme)["keys"]] == [new.kid]
    assert validate(acme, old.key)["code"] == "BAD_SIGNATURE"
    assert validate(acme, new.key)["code"] == "VALID"


def test_the_last_active_key_cannot_be_retired(app, acme):
    lic = make_license(app, acme)
    result = app.test_cli_runner().invoke(
        args=["albedo", "retire-license-key", "acme", lic.kid])
    assert result.exit_code != 0 and "Rotate first" in result.output
    assert validate(acme, lic.key)["code"] == "VALID"


def test_cli_refuses_an_unknown_tenant(app, acme):
    result = app.test_cli_runner().invoke(args=["albedo", "rotate-license-key", "nope"])
    assert result.exit_code != 0 and "no tenant" in result.output
