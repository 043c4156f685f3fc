"""`flask albedo …` commands for operators and for the quick start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db

albedo_cli = AppGroup("albedo", help="Albedo operations: tenants, users, demo data, workers.")


def _register_feature_commands() -> None:
    from app.licensing.cli import register as register_licensing

    register_licensing(albedo_cli)
    from app.ops.cli import register as register_ops

    register_ops(albedo_cli)  # backup, restore

DEMO = {
    "admin": ("admin@example.com", "albedo-admin-demo", "Platform Admin"),
    "reseller": ("owner@acme.example", "acme-owner-demo", "Acme Owner"),
    "customer": ("customer@acme.example", "acme-customer-demo", "Casey Customer"),
}


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _validation(exc: Exception) -> None:
    details = getattr(exc, "details", None) or {"error": str(exc)}
    details = details.get("fields", details)
    _fail("; ".join(f"{k}: {v}" for k, v in details.items()))


@albedo_cli.command("create-tenant")
@click.argument("slug")
@click.option("--name", required=True, help="The reseller's name.")
@click.option("--kind", type=click.Choice(["reseller", "platform"]), default="reseller",
              show_default=True)
@click.option("--display-name", help="Name shown on pages and emails (default: --name).")
@click.option("--primary-color", help="Hex colour, e.g. #e11d48.")
@click.option("--accent-color", help="Hex colour, e.g. #f59e0b.")
@click.option("--support-email")
@click.option("--license-key-prefix", help="Capital letters and digits, e.g. ACME.")
def create_tenant_command(slug, name, kind, display_name, primary_color, accent_color,
                          support_email, license_key_prefix):
    """Create a tenant; a reseller is then served at SLUG.<platform domain>."""
    from tenants.service import Branding, TenantValidationError, create_tenant, info_for
    from tenants.urls import base_url

    try:
        tenant = create_tenant(slug, name, kind, Branding(
            display_name=display_name, primary_color=primary_color, accent_color=accent_color,
            support_email=support_email, license_key_prefix=license_key_prefix))
    except TenantValidationError as exc:
        _validation(exc)
    db.session.commit()
    click.echo(f"created {tenant.kind} tenant {tenant.slug} ({tenant.id}) at "
               f"{base_url(info_for(tenant))}")


@albedo_cli.command("add-domain")
@click.argument("slug")
@click.argument("hostname")
@click.option("--verified", is_flag=True, help="Mark it verified now (you checked DNS).")
@click.option("--primary", is_flag=True, help="Make it the tenant's primary domain.")
def add_domain_command(slug, hostname, verified, primary):
    """Attach a custom HOSTNAME to tenant SLUG."""
    from app.errors import ApiError
    from tenants.context import activate
    from tenants.platform import attach_domain
    from tenants.service import get_by_slug, info_for
    from tenants.verification import record_name

    tenant = get_by_slug(slug) or _fail(f"no tenant {slug!r}")
    # Recorded in the tenant's own audit log: there is no signed-in operator here.
    with activate(info_for(tenant)):
        try:
            domain = attach_domain(tenant, hostname, verified, primary, actor=None)
        except ApiError as exc:
            _validation(exc)
        db.session.commit()
    state = "verified" if domain.verified else (
        f"unverified: publish TXT {record_name(domain.hostname)} = {domain.verification_token}")
    click.echo(f"{domain.hostname} → {tenant.slug} ({state})")


@albedo_cli.command("create-user")
@click.argument("tenant_slug")
@click.argument("email")
@click.option("--role", type=click.Choice(["ADMIN", "RESELLER", "USER"]), default="USER",
              show_default=True)
@click.option("--name", default="")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 10 characters (prompted when omitted).")
def create_user_command(tenant_slug, email, role, name, password):
    """Create a user in the tenant TENANT_SLUG."""
    from app.auth.service import UserValidationError, create_user
    from app.errors import ApiError
    from tenants.context import activate
    from tenants.service import get_by_slug, info_for

    tenant = get_by_slug(tenant_slug) or _fail(f"no tenant {tenant_slug!r}")
    with activate(info_for(tenant)):
        try:
            user = create_user(email, password, role=role, name=name, verified=True)
        except UserValidationError as exc:
            _validation(exc)
        except ApiError as exc:  # e.g. the reseller's plan has no customer place left
            _fail(exc.message)
        db.session.commit()
        click.echo(f"created {user.role} {user.email} in {tenant.slug}")


def seed_demo() -> list[tuple[str, str, str, str]]:
    """Platform admin, reseller acme with branding, one end customer. Idempotent."""
    from app.auth.service import create_user, find_by_email
    from app.billing.demo import seed_demo_plans
    from tenants.context import activate
    from tenants.service import Branding, create_tenant, get_by_slug, info_for
    from tenants.urls import base_url

    platform = get_by_slug("platform") or create_tenant(
        "platform", current_app.extensions["albedo.settings"].platform_name, "platform",
        Branding(primary_color="#111827", accent_color="#6366f1", license_key_prefix="ALB"))
    acme = get_by_slug("acme") or create_tenant(
        "acme", "Acme Agents", "reseller",
        Branding(display_name="Acme Agents", primary_color="#e11d48", accent_color="#f59e0b",
                 support_email="support@acme.example", license_key_prefix="ACME"))
    db.session.flush()
    seed_demo_plans(info_for(platform), info_for(acme))  # room to try things beyond 1 agent
    rows = []
    for tenant, key, role in ((platform, "admin", "ADMIN"), (acme, "reseller", "RESELLER"),
                              (acme, "customer", "USER")):
        email, password, name = DEMO[key]
        info = info_for(tenant)
        with activate(info):
            if find_by_email(email) is None:
                create_user(email, password, role=role, name=name, verified=True)
            rows.append((f"{base_url(info)}/login", role, email, password))
    db.session.commit()
    return rows


def _print_demo(rows, heading: str = "Demo accounts (sign in at the URL):") -> None:
    click.echo("")
    click.echo(f"  {heading}")
    for url, role, email, password in rows:
        click.echo(f"    {url:<40} {role:<9} {email:<24} {password}")
    click.echo("")


@albedo_cli.command("seed-demo")
@click.option("--force", is_flag=True, help="Seed even in production (demo passwords!).")
def seed_demo_command(force):
    """Create the demo: platform admin, reseller acme (branded), one end customer."""
    if current_app.extensions["albedo.settings"].is_production and not force:
        _fail("refusing to seed demo accounts with known passwords in production "
              "(--force overrides)")
    _print_demo(seed_demo())


@albedo_cli.command("worker")
@click.option("--queue", "-q", "queues", multiple=True,
              type=click.Choice(["agents", "emails", "webhooks", "default"]),
              help="Queue to listen on (repeatable); default: all.")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--fork", is_flag=True, help="Fork a work horse per job (slower).")
def worker_command(queues, burst, fork):
    """Run a background worker (RQ, with the scheduler for retries)."""
    from jobs.worker import run_worker

    run_worker(current_app._get_current_object(), list(queues) or None, burst=burst,
               simple=not fork)


@albedo_cli.command("ping-worker")
@click.argument("tenant_slug", default="platform")
@click.option("--timeout", default=10.0, show_default=True)
def ping_worker_command(tenant_slug, timeout):
    """Send a job for TENANT_SLUG and wait for a worker to answer from that tenant."""
    from jobs.enqueue import enqueue
    from tenants.context import activate
    from tenants.service import get_by_slug, info_for

    tenant = get_by_slug(tenant_slug) or _fail(f"no tenant {tenant_slug!r}")
    with activate(info_for(tenant)):
        job = enqueue("diagnostics.whoami")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh()
        if job.is_finished:
            click.echo(f"worker answered: {job.return_value()}")
            return
        if job.is_failed:
            _fail(f"the job failed: {job.latest_result().exc_string}")
        time.sleep(0.2)
    _fail(f"no worker answered within {timeout:g}s: is `flask albedo worker` running?")


@albedo_cli.command("embedded-redis")
@click.argument("action", type=click.Choice(["start", "stop"]))
def embedded_redis_command(action):
    """Start or stop the quick start's embedded Redis (instance/redis.sock)."""
    from app import embedded_redis

    settings = current_app.extensions["albedo.settings"]
    if not settings.uses_embedded_redis:
        _fail("REDIS_URL is set: the embedded Redis is not used")
    if action == "start":
        click.echo(f"embedded Redis on {embedded_redis.ensure_running(settings.instance_path)}")
    else:
        click.echo("stopped" if embedded_redis.stop(settings.instance_path) else "not running")


@albedo_cli.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
def dev_command(host, port):
    """The quick start: migrate, seed the demo, start a worker, serve the web app."""
    from flask_migrate import upgrade

    settings = current_app.extensions["albedo.settings"]
    if settings.public_port != port:
        click.echo(f"  note: links in emails use port {settings.public_port}; set "
                   f"ALBEDO_PUBLIC_PORT={port} to match (make run does)", err=True)
    upgrade()
    rows = seed_demo()
    env = dict(os.environ, ALBEDO_INSTANCE_PATH=settings.instance_path)
    worker = subprocess.Popen([sys.executable, "-m", "jobs.worker"], env=env)
    click.echo(f"  worker started (pid {worker.pid}); API docs at "
               f"http://{settings.platform_domain}:{port}/api/docs")
    _print_demo(rows, f"Albedo is running at http://{settings.platform_domain}:{port} and "
                      f"http://acme.{settings.platform_domain}:{port} — sign in with:")
    def stop(signum, frame):  # SIGTERM too, not only Ctrl-C, cleans up below
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        from werkzeug.serving import run_simple

        run_simple(host, port, current_app._get_current_object(), threaded=True,
                   use_reloader=False)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        if settings.uses_embedded_redis:
            from app import embedded_redis

            embedded_redis.stop(settings.instance_path)


_register_feature_commands()
