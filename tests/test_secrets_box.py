import uuid

import pytest
from cryptography.fernet import Fernet

from app import secrets_box
from app.secrets_box import SecretError


def test_round_trip_bound_to_tenant_and_purpose(ctx):
    a, b = uuid.uuid4(), uuid.uuid4()
    blob = secrets_box.encrypt("sk-live-123", a, "provider_key")
    assert "sk-live-123" not in blob
    assert secrets_box.decrypt_text(blob, a, "provider_key") == "sk-live-123"
    with pytest.raises(SecretError):
        secrets_box.decrypt(blob, b, "provider_key")  # copied into another tenant's row
    with pytest.raises(SecretError):
        secrets_box.decrypt(blob, a, "webhook_secret")  # reused for another purpose
    with pytest.raises(SecretError):
        secrets_box.decrypt(blob[:-4] + "AAAA", a, "provider_key")


def test_rotation_keeps_old_blobs_readable(app, migrated):
    from app import create_app

    tenant = uuid.uuid4()
    with app.app_context():
        old_blob = secrets_box.encrypt("secret", tenant, "p")
    new_key = Fernet.generate_key().decode()
    rotated_app = create_app(migrated.with_overrides(
        encryption_keys=(new_key, *migrated.encryption_keys)))
    with rotated_app.app_context():
        assert secrets_box.decrypt_text(old_blob, tenant, "p") == "secret"
        new_blob = secrets_box.rotate(old_blob)
    only_new = create_app(migrated.with_overrides(encryption_keys=(new_key,)))
    with only_new.app_context():
        assert secrets_box.decrypt_text(new_blob, tenant, "p") == "secret"
        with pytest.raises(SecretError):
            secrets_box.decrypt(old_blob, tenant, "p")
