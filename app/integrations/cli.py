"""`flask webhooks …`: the sweep that re-queues due deliveries.

Every failed attempt already queues its retry as a delayed job; the sweep is the safety net
for jobs Redis lost (a restart without persistence) and for workers that died mid-request.
Run ``flask webhooks sweep --every 30`` next to the workers (docker-compose does).
"""

from __future__ import annotations

import logging
import time

import click
from flask.cli import AppGroup

from app.extensions import db

webhooks_cli = AppGroup("webhooks", help="Outbound webhook delivery.")
log = logging.getLogger(__name__)


@webhooks_cli.command("sweep")
@click.option("--every", type=int, default=0,
              help="Repeat every N seconds (0: run once and exit).")
def sweep(every: int) -> None:
    """Queue every delivery that is due, in every tenant."""
    from app.integrations.delivery import dispatch_due

    while True:
        queued = dispatch_due()
        db.session.remove()
        click.echo(f"queued {queued} due deliveries")
        if every <= 0:
            return
        time.sleep(every)
