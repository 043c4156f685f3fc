"""Settings: read once from the environment, validated with clear errors."""

import json
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.settings import Settings, SettingsError


def test_no_configuration_means_sqlite_embedded_redis_and_generated_secrets(tmp_path):
    settings = Settings.from_env({}, instance_path=str(tmp_path))
    assert settings.env == "development"
    assert settings.database_url == f"sqlite:///{tmp_path / 'albedo.sqlite3'}"
    assert settings.uses_embedded_redis
    assert settings.embedded_redis_socket == str(tmp_path / "redis.sock")
    secrets_file = tmp_path / "dev-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    # Generated once: a restart keeps the same secrets.
    again = Settings.from_env({}, instance_path=str(tmp_path))
    assert (again.secret_key, again.encryption_keys) == (settings.secret_key,
                                                         settings.encryption_keys)
    assert json.loads(secrets_file.read_text())["secret_key"] == settings.secret_key


def test_production_refuses_missing_secrets(tmp_path):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"ALBEDO_ENV": "production"}, instance_path=str(tmp_path))
    message = str(error.value)
    assert "SECRET_KEY is not set" in message and "ALBEDO_ENCRYPTION_KEYS is not set" in message
    assert not (Path(tmp_path) / "dev-secrets.json").exists()


def test_production_with_secrets_starts(tmp_path):
    settings = Settings.from_env({
        "ALBEDO_ENV": "production", "SECRET_KEY": "x" * 40,
        "ALBEDO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": "postgres://app@db/albedo", "REDIS_URL": "redis://redis:6379/0",
    }, instance_path=str(tmp_path))
    assert settings.database_url == "postgresql+psycopg://app@db/albedo"
    assert settings.url_scheme == "https" and settings.public_port is None
    assert settings.log_format == "json"


@pytest.mark.parametrize("env, fragment", [
    ({"ALBEDO_ENV": "staging"}, "ALBEDO_ENV must be one of"),
    ({"ALBEDO_ENCRYPTION_KEYS": "not-a-key"}, "not a valid Fernet key"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL must be"),
    ({"ALBEDO_PLATFORM_DOMAIN": "https://albedo.example"}, "bare hostname"),
    ({"ALBEDO_PUBLIC_PORT": "eighty"}, "ALBEDO_PUBLIC_PORT must be a whole number"),
    ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS must be true or false"),
    ({"ALBEDO_EMAIL_BACKEND": "pigeon"}, "ALBEDO_EMAIL_BACKEND must be one of"),
    ({"ALBEDO_LICENSE_SYNC_SECONDS": "soon"}, "ALBEDO_LICENSE_SYNC_SECONDS must be a number"),
    ({"ALBEDO_LICENSE_SYNC_SECONDS": "-1"}, "ALBEDO_LICENSE_SYNC_SECONDS must be between"),
])
def test_bad_values_are_named(tmp_path, env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env, instance_path=str(tmp_path))


def test_importing_the_app_has_no_side_effects(tmp_path):
    import subprocess
    import sys

    code = ("import app, app.cli, tenants, jobs, jobs.worker; import os; "
            "print(os.listdir('.'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # nothing created: no instance/, no database, no Redis


def test_the_embedded_redis_stops_for_good(tmp_path):
    import shutil

    from app import embedded_redis

    instance = tmp_path / "i"
    socket_path = embedded_redis.ensure_running(str(instance))
    assert embedded_redis._ping(socket_path)
    assert embedded_redis.stop(str(instance), save=False)
    shutil.rmtree(instance)  # what the test fixture does next: the server must not linger
    assert not embedded_redis._ping(socket_path)
    assert embedded_redis.stop(str(tmp_path / "never-started")) is False
