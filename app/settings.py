"""One typed settings object, read from the environment once at start-up and validated.

Every knob Albedo has is a field here, with its environment variable and its default.
Development gets working defaults with no configuration at all: a SQLite database and an
embedded Redis under ``instance/``, and a secret key and encryption key generated once into
``instance/dev-secrets.json`` so sessions and encrypted columns survive restarts. Production
refuses to start without the secrets it cannot safely invent.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

ENVIRONMENTS = ("development", "testing", "production")
EMAIL_BACKENDS = ("outbox", "smtp", "sendgrid")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """The environment describes a configuration Albedo cannot run with."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Albedo cannot start, the configuration has problems:\n{lines}")


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    instance_path: str = "instance"
    secret_key: str = ""
    # MultiFernet keys, newest first: the first encrypts, all decrypt (rotation).
    encryption_keys: tuple[str, ...] = ()
    database_url: str = ""
    # Owner connection for migrations; the app itself connects with database_url, a role
    # that neither owns the tables nor bypasses row-level security.
    migrations_database_url: str = ""
    redis_url: str = ""
    platform_domain: str = "localhost"
    platform_name: str = "Albedo"
    url_scheme: str = "http"
    # Port appended to absolute URLs (emails, redirects); None in production behind :443.
    public_port: int | None = 5000
    # How many proxies in front set X-Forwarded-*; 0 means those headers are ignored.
    proxy_count: int = 0
    tenant_cache_ttl: float = 30.0
    # How long a process decides license validations from what Redis last told it
    # (app/licensing/ledger.py); 0 asks Redis at every validation.
    license_sync_seconds: float = 0.1
    # Also sign validation answers under the legacy header name (Albedo-Signature), for
    # verifiers shipped before License-Signature; turn off once they are replaced.
    license_legacy_signature: bool = True
    # Warm authenticated reads answered before Flask's pipeline (app/api/lane); off sends
    # every read through the Flask routes, which answer the same.
    read_lane: bool = True
    email_backend: str = "outbox"
    email_from_address: str = "no-reply@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    sendgrid_api_key: str = ""
    sendgrid_host: str = "https://api.sendgrid.com"
    log_format: str = "text"
    log_level: str = "INFO"
    max_content_length: int = 1_048_576
    job_timeout: int = 600
    # Durable work (jobs/durable.py): how often the recovery sweep runs, and how long a unit
    # may sit queued with no live job (or past its lease) before the sweep dispatches it again.
    recovery_seconds: int = 15
    recovery_grace_seconds: int = 30
    # ... and how many times in a row it re-dispatches a unit no worker took before ending it
    # failed (dispatch_attempts_exhausted): a job lost again and again must end, not loop.
    max_dispatches: int = 5
    # Operations (app/ops): /metrics answers only a bearer of this token (unset: no /metrics).
    metrics_token: str = ""
    # Where prometheus_client keeps each process's values (multiprocess mode); it reads the
    # variable itself at import, this copy is validated and shown on the system page.
    prometheus_multiproc_dir: str = ""
    sentry_dsn: str = ""
    sentry_environment: str = ""
    sentry_traces_sample_rate: float = 0.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def uses_embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded_redis_socket(self) -> str:
        return str(Path(self.instance_path) / "redis.sock")

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed and validated again (tests use this)."""
        return replace(self, **changes).validated()

    def validated(self) -> Settings:
        problems: list[str] = []
        if self.env not in ENVIRONMENTS:
            problems.append(f"ALBEDO_ENV must be one of {', '.join(ENVIRONMENTS)}, "
                            f"got {self.env!r}")
        if not self.secret_key:
            problems.append("SECRET_KEY is not set: generate one with "
                            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
        elif self.is_production and len(self.secret_key) < 32:
            problems.append("SECRET_KEY must be at least 32 characters in production")
        if not self.encryption_keys:
            problems.append("ALBEDO_ENCRYPTION_KEYS is not set: generate one with "
                            "`python -c 'from cryptography.fernet import Fernet; "
                            "print(Fernet.generate_key().decode())'`")
        for i, key in enumerate(self.encryption_keys):
            try:
                Fernet(key.encode())
            except (ValueError, TypeError):
                problems.append(f"ALBEDO_ENCRYPTION_KEYS entry {i + 1} is not a valid Fernet key "
                                "(32 url-safe base64-encoded bytes)")
        scheme = urlsplit(self.database_url).scheme
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            problems.append("DATABASE_URL must be a sqlite:// or postgresql:// URL, "
                            f"got {scheme!r}")
        if self.redis_url and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if not self.platform_domain or "/" in self.platform_domain or ":" in self.platform_domain:
            problems.append("ALBEDO_PLATFORM_DOMAIN must be a bare hostname such as "
                            "'localhost' or 'albedo.example'")
        if self.url_scheme not in ("http", "https"):
            problems.append("ALBEDO_URL_SCHEME must be http or https")
        if self.email_backend not in EMAIL_BACKENDS:
            problems.append(f"ALBEDO_EMAIL_BACKEND must be one of {', '.join(EMAIL_BACKENDS)}")
        if self.email_backend == "sendgrid" and not self.sendgrid_api_key:
            problems.append("ALBEDO_EMAIL_BACKEND=sendgrid needs SENDGRID_API_KEY")
        if self.log_format not in LOG_FORMATS:
            problems.append("ALBEDO_LOG_FORMAT must be text or json")
        if self.proxy_count < 0:
            problems.append("ALBEDO_PROXY_COUNT cannot be negative")
        if not 0 <= self.license_sync_seconds <= 10:
            problems.append("ALBEDO_LICENSE_SYNC_SECONDS must be between 0 and 10 seconds")
        if not 1 <= self.recovery_seconds <= 3600:
            problems.append("ALBEDO_RECOVERY_SECONDS must be between 1 and 3600 seconds")
        if not 1 <= self.recovery_grace_seconds <= 86400:
            problems.append("ALBEDO_RECOVERY_GRACE_SECONDS must be between 1 and 86400 seconds")
        if not 1 <= self.max_dispatches <= 100:
            problems.append("ALBEDO_MAX_DISPATCHES must be between 1 and 100")
        if self.metrics_token and len(self.metrics_token) < 16:
            problems.append("ALBEDO_METRICS_TOKEN must be at least 16 characters")
        if self.prometheus_multiproc_dir and not Path(self.prometheus_multiproc_dir).is_dir():
            problems.append("PROMETHEUS_MULTIPROC_DIR must be an existing directory, got "
                            f"{self.prometheus_multiproc_dir!r}")
        if self.sentry_dsn and urlsplit(self.sentry_dsn).scheme not in ("http", "https"):
            problems.append("SENTRY_DSN must be an http(s):// DSN from your Sentry project")
        if not 0 <= self.sentry_traces_sample_rate <= 1:
            problems.append("SENTRY_TRACES_SAMPLE_RATE must be between 0 and 1")
        if problems:
            raise SettingsError(problems)
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 instance_path: str | None = None) -> Settings:
        """Read and validate the settings; development secrets are generated on first use."""
        env = dict(os.environ if environ is None else environ)
        problems: list[str] = []

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        def converted(name: str, default, convert, what: str):
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return convert(raw)
            except ValueError:
                problems.append(f"{name} must be {what}, got {raw!r}")
                return default

        def integer(name: str, default: int | None) -> int | None:
            return converted(name, default, int, "a whole number")

        def number(name: str, default: float) -> float:
            return converted(name, default, float, "a number")

        def boolean(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw in ("1", "true", "yes", "on"):
                return True
            if raw in ("0", "false", "no", "off"):
                return False
            problems.append(f"{name} must be true or false, got {raw!r}")
            return default

        albedo_env = text("ALBEDO_ENV", "development")
        production = albedo_env == "production"
        instance = Path(instance_path or text("ALBEDO_INSTANCE_PATH", "instance")).absolute()

        secret_key = env.get("SECRET_KEY", "").strip()
        keys = tuple(k.strip() for k in env.get("ALBEDO_ENCRYPTION_KEYS", "").split(",")
                     if k.strip())
        if not production and (not secret_key or not keys):
            dev = _development_secrets(instance)
            secret_key = secret_key or dev["secret_key"]
            keys = keys or (dev["encryption_key"],)

        database_url = text("DATABASE_URL", f"sqlite:///{instance / 'albedo.sqlite3'}")
        # SQLAlchemy wants an explicit driver for psycopg 3; accept the usual spellings.
        for prefix in ("postgres://", "postgresql://"):
            if database_url.startswith(prefix):
                database_url = "postgresql+psycopg://" + database_url[len(prefix):]
        migrations_url = text("MIGRATIONS_DATABASE_URL", database_url)
        for prefix in ("postgres://", "postgresql://"):
            if migrations_url.startswith(prefix):
                migrations_url = "postgresql+psycopg://" + migrations_url[len(prefix):]

        known = {f.name for f in fields(cls)}
        settings = cls(
            env=albedo_env,
            instance_path=str(instance),
            secret_key=secret_key,
            encryption_keys=keys,
            database_url=database_url,
            migrations_database_url=migrations_url,
            redis_url=text("REDIS_URL", ""),
            platform_domain=text("ALBEDO_PLATFORM_DOMAIN", "localhost").lower().rstrip("."),
            platform_name=text("ALBEDO_PLATFORM_NAME", "Albedo"),
            url_scheme=text("ALBEDO_URL_SCHEME", "https" if production else "http"),
            public_port=integer("ALBEDO_PUBLIC_PORT", None if production else 5000),
            proxy_count=integer("ALBEDO_PROXY_COUNT", 0) or 0,
            tenant_cache_ttl=float(integer("ALBEDO_TENANT_CACHE_TTL", 30) or 0),
            license_sync_seconds=number("ALBEDO_LICENSE_SYNC_SECONDS", 0.1),
            license_legacy_signature=boolean("ALBEDO_LICENSE_LEGACY_SIGNATURE", True),
            read_lane=boolean("ALBEDO_READ_LANE", True),
            email_backend=text("ALBEDO_EMAIL_BACKEND", "outbox"),
            email_from_address=text("ALBEDO_EMAIL_FROM", "no-reply@localhost"),
            smtp_host=text("SMTP_HOST", "localhost"),
            smtp_port=integer("SMTP_PORT", 25) or 25,
            smtp_username=text("SMTP_USERNAME", ""),
            smtp_password=text("SMTP_PASSWORD", ""),
            smtp_starttls=boolean("SMTP_STARTTLS", False),
            sendgrid_api_key=text("SENDGRID_API_KEY", ""),
            sendgrid_host=text("SENDGRID_HOST", "https://api.sendgrid.com"),
            log_format=text("ALBEDO_LOG_FORMAT", "json" if production else "text"),
            log_level=text("ALBEDO_LOG_LEVEL", "INFO").upper(),
            max_content_length=integer("ALBEDO_MAX_CONTENT_LENGTH", 1_048_576) or 1_048_576,
            job_timeout=integer("ALBEDO_JOB_TIMEOUT", 600) or 600,
            recovery_seconds=integer("ALBEDO_RECOVERY_SECONDS", 15) or 15,
            recovery_grace_seconds=integer("ALBEDO_RECOVERY_GRACE_SECONDS", 30) or 30,
            max_dispatches=integer("ALBEDO_MAX_DISPATCHES", 5),
            metrics_token=env.get("ALBEDO_METRICS_TOKEN", "").strip(),
            prometheus_multiproc_dir=text("PROMETHEUS_MULTIPROC_DIR", ""),
            sentry_dsn=text("SENTRY_DSN", ""),
            sentry_environment=text("SENTRY_ENVIRONMENT", albedo_env),
            sentry_traces_sample_rate=number("SENTRY_TRACES_SAMPLE_RATE", 0.0),
            # Feature packages read their own variables from here (ALBEDO_* and providers).
            extra={k: v for k, v in env.items() if k not in known and (
                k.startswith(("ALBEDO_", "OPENAI_", "STRIPE_", "OAUTH_")))},
        )
        if problems:
            raise SettingsError(problems)
        return settings.validated()


def _development_secrets(instance: Path) -> dict[str, str]:
    """Generated once, then reused, so a restart keeps sessions and encrypted data readable."""
    path = instance / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    instance.mkdir(parents=True, exist_ok=True)
    values = {"secret_key": secrets.token_urlsafe(48),
              "encryption_key": Fernet.generate_key().decode()}
    # Written with 0600: these are secrets even in development.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process (web or worker) won the race
        return json.loads(path.read_text())
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return values
