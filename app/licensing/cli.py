"""`flask albedo rotate-license-key SLUG` and `retire-license-key SLUG KID`."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.extensions import db


def _tenant_info(slug: str):
    from tenants.service import get_by_slug, info_for

    tenant = get_by_slug(slug)
    if tenant is None:
        raise click.ClickException(f"no tenant {slug!r}")
    info = info_for(tenant)
    # End the tenant-less transaction: PostgreSQL's row-level security takes the tenant
    # from the transaction that starts inside tenants.activate().
    db.session.commit()
    return info


@click.command("rotate-license-key")
@click.argument("slug")
@with_appcontext
def rotate_license_key_command(slug: str) -> None:
    """Give tenant SLUG a new license signing key; older keys keep verifying."""
    from app.licensing import signing
    from tenants.context import activate

    with activate(_tenant_info(slug)):
        row = signing.rotate()
        db.session.commit()
        active = [k.kid for k in signing.keys_newest_first()]
    click.echo(f"new signing key {row.kid} for {slug}; verifying keys: {', '.join(active)}")


@click.command("retire-license-key")
@click.argument("slug")
@click.argument("kid")
@with_appcontext
def retire_license_key_command(slug: str, kid: str) -> None:
    """Stop key KID of tenant SLUG from verifying (keys it signed stop validating)."""
    from app.errors import ApiError
    from app.licensing import signing
    from tenants.context import activate

    with activate(_tenant_info(slug)):
        try:
            signing.retire(kid)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        db.session.commit()
    click.echo(f"retired signing key {kid} of {slug}")


def register(group: click.Group) -> None:
    group.add_command(rotate_license_key_command)
    group.add_command(retire_license_key_command)
