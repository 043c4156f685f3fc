"""Offline license files and machine files: signed, optionally encrypted with a key derived
from the license key, read and checked by clients/python."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.licensing_support import jwks_of, load_verifier, make_license

T0 = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)


def _file(site, license_id, headers, **body):
    response = site.client.post(f"/api/v1/licenses/{license_id}/file", json=body,
                                headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["certificate"]


def _refused(code: str, text: str, jwks: dict, **kwargs) -> None:
    verifier = load_verifier()
    with pytest.raises(verifier.LicenseFileInvalid) as caught:
        verifier.read_license_file(text, jwks, **kwargs)
    assert caught.value.code == code, caught.value


def test_a_license_file_is_valid_then_expires(app, acme, globex, api_caller, at):
    at(T0)
    reseller = api_caller(acme, role="RESELLER")
    lic = make_license(app, acme, entitlements=["export"], duration_days=365)
    make_license(app, globex)
    text = _file(acme, lic.id, reseller.headers, ttl=86400)
    assert text.startswith("-----BEGIN LICENSE FILE-----\n")
    assert "albedo" not in text.lower()
    jwks = jwks_of(acme)
    verifier = load_verifier()
    doc = verifier.read_license_file(text, jwks, key=lic.key, now=T0 + timedelta(hours=1))
    assert doc["type"] == "license" and doc["license"]["id"] == str(lic.id)
    assert doc["entitlements"] == ["chat", "export"] and doc["machine"] is None
    assert doc["issued"] == T0.isoformat() and doc["ttl"] == 86400
    assert doc["license"]["expires_at"] == (T0 + timedelta(days=365)).isoformat()
    # Past issue + TTL the file is refused offline (at the second itself it still holds).
    verifier.read_license_file(text, jwks, now=T0 + timedelta(seconds=86400))
    _refused("EXPIRED", text, jwks, now=T0 + timedelta(seconds=86401))
    # Another reseller's keys do not verify it, and the other reseller cannot ask for it.
    _refused("UNKNOWN_KEY", text, jwks_of(globex), now=T0)
    other = api_caller(globex, role="RESELLER")
    assert globex.client.post(f"/api/v1/licenses/{lic.id}/file", json={},
                              headers=other.headers).status_code == 404


def test_a_tampered_file_is_refused(app, acme, globex, api_caller, at):
    at(T0)
    reseller = api_caller(acme, role="RESELLER")
    lic = make_license(app, acme)
    make_license(app, globex)
    text = _file(acme, lic.id, reseller.headers)
    jwks = jwks_of(acme)
    lines = text.strip().splitlines()
    envelope = json.loads(base64.b64decode("".join(lines[1:-1])))
    doc = json.loads(base64.b64decode(envelope["enc"]))
    doc["license"]["expires_at"] = None  # make it perpetual
    doc["entitlements"].append("everything")
    envelope["enc"] = base64.b64encode(json.dumps(doc).encode()).decode()
    forged = "\n".join([lines[0], base64.b64encode(json.dumps(envelope).encode()).decode(),
                        lines[-1]])
    _refused("BAD_SIGNATURE", forged, jwks, now=T0)
    _refused("MALFORMED", text.replace("LICENSE FILE", "MACHINE FILE", 1), jwks, now=T0)
    _refused("MALFORMED", "not a file", jwks, now=T0)
    _refused("KEY_MISMATCH", text, jwks, key=make_license(app, acme).key, now=T0)


def test_an_encrypted_file_opens_only_with_its_license_key(app, acme, globex, at):
    at(T0)
    lic = make_license(app, acme)
    other = make_license(app, acme)
    make_license(app, globex)
    # The agent asks with its key (no account): its own license only.
    text = _file(acme, lic.id, {"Authorization": f"License {lic.key}"}, encrypt=True)
    assert acme.client.post(f"/api/v1/licenses/{other.id}/file", json={},
                            headers={"Authorization": f"License {lic.key}"}
                            ).status_code == 404
    jwks = jwks_of(acme)
    verifier = load_verifier()
    _refused("KEY_REQUIRED", text, jwks, now=T0)
    _refused("DECRYPTION_FAILED", text, jwks, key=other.key, now=T0)
    grouped = lic.key.lower()  # the holder may type it in any accepted form
    doc = verifier.read_license_file(text, jwks, key=grouped, now=T0)
    assert doc["license"]["id"] == str(lic.id)


def test_a_machine_file_at_activation_is_bound_to_its_machine(app, acme, globex, at):
    at(T0)
    lic = make_license(app, acme, floating=True, max_machines=2)
    make_license(app, globex)
    activated = acme.client.post(
        "/api/v1/machines", headers={"Authorization": f"License {lic.key}"},
        json={"fingerprint": "fp-1", "cores": 4, "file": True, "encrypt": True,
              "file_ttl": 7200})
    assert activated.status_code == 201, activated.get_data(as_text=True)
    text = activated.get_json()["machine_file"]
    assert text.startswith("-----BEGIN MACHINE FILE-----")
    jwks = jwks_of(acme)
    verifier = load_verifier()
    doc = verifier.read_license_file(text, jwks, key=lic.key, fingerprint="fp-1", now=T0)
    assert doc["machine"]["fingerprint"] == "fp-1" and doc["machine"]["cores"] == 4
    assert doc["ttl"] == 7200
    # On another machine: the key derived for fp-2 does not open it, and a plain file
    # for fp-1 is refused on fp-2.
    _refused("DECRYPTION_FAILED", text, jwks, key=lic.key, fingerprint="fp-2", now=T0)
    plain = acme.client.post(
        "/api/v1/machines", headers={"Authorization": f"License {lic.key}"},
        json={"fingerprint": "fp-1", "file": True}).get_json()["machine_file"]
    _refused("FINGERPRINT_MISMATCH", plain, jwks, fingerprint="fp-2", now=T0)
    _refused("FINGERPRINT_REQUIRED", plain, jwks, now=T0)
    _refused("EXPIRED", text, jwks, key=lic.key, fingerprint="fp-1",
             now=T0 + timedelta(seconds=7201))
    no_file = acme.client.post(
        "/api/v1/machines", headers={"Authorization": f"License {lic.key}"},
        json={"fingerprint": "fp-1"}).get_json()
    assert no_file.get("machine_file") is None
